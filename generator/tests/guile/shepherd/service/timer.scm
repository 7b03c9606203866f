;;; Stand-in for the Shepherd (≥ 1.0) procedures that the start and stop
;;; G-expressions of windlass's services call at run time, used only by
;;; windlass's tests to evaluate those G-expressions.  Each procedure has the
;;; signature the Shepherd manual documents (keywords the stand-in does not
;;; know are errors) and returns a description of what it was asked to do.
;;; The passwd/group procedures answer for a fictitious user.

(define-module (shepherd service timer)
  #:use-module (srfi srfi-1)
  #:export (calendar-event
            calendar-event-fields
            cron-string->calendar-event
            make-timer-constructor
            make-timer-destructor
            trigger-timer
            command
            make-forkexec-constructor
            make-kill-destructor
            getpwnam
            getgrgid
            passwd:gid
            passwd:dir
            group:name))

(define %weekdays
  '(monday tuesday wednesday thursday friday saturday sunday))

(define (in-range? lo hi)
  (lambda (v) (and (exact-integer? v) (<= lo v hi))))

(define* (calendar-event #:key
                         (months 'any) (days-of-month 'any)
                         (days-of-week 'any) (hours 'any) (minutes 'any)
                         (seconds '(0)))
  (define (check name value ok?)
    (unless (or (eq? value 'any) (and (list? value) (every ok? value)))
      (error (format #f "calendar-event: ~a out of range: ~s" name value))))
  (check 'months months (in-range? 1 12))
  (check 'days-of-month days-of-month (in-range? 1 31))
  (check 'days-of-week days-of-week (lambda (d) (memq d %weekdays)))
  (check 'hours hours (in-range? 0 23))
  (check 'minutes minutes (in-range? 0 59))
  (check 'seconds seconds (in-range? 0 59))
  `(calendar-event (months . ,months) (days-of-month . ,days-of-month)
                   (days-of-week . ,days-of-week) (hours . ,hours)
                   (minutes . ,minutes) (seconds . ,seconds)))

(define (calendar-event-fields event) (cdr event))

(define (cron-string->calendar-event str)
  (unless (and (string? str)
               (= 5 (length (filter (negate string-null?)
                                    (string-split str #\space)))))
    (error "cron-string->calendar-event: not a cron date line" str))
  `(cron ,str))

(define* (command line #:key user group environment-variables)
  (unless (and (list? line) (every string? line))
    (error "command: the command line must be a list of strings" line))
  `(command (line . ,line) (user . ,user) (group . ,group)
            (environment-variables . ,environment-variables)))

(define* (make-timer-constructor event action
                                 #:key log-file max-duration
                                 wait-for-termination? occurrences)
  `(timer (event . ,event) (action . ,action) (log-file . ,log-file)
          (max-duration . ,max-duration)
          (wait-for-termination? . ,wait-for-termination?)))

(define (make-timer-destructor) '(timer-destructor))
(define trigger-timer '(trigger-timer))

;; The keywords of Shepherd 1.0.9's make-forkexec-constructor
;; (shepherd/service.scm in the shared oracles).
(define* (make-forkexec-constructor command
                                    #:key user group (supplementary-groups '())
                                    log-file input-port directory
                                    file-creation-mask create-session?
                                    environment-variables resource-limits
                                    pid-file pid-file-timeout)
  (unless (and (list? command) (every string? command))
    (error "make-forkexec-constructor: the command must be a list of strings"
           command))
  `(forkexec (command . ,command) (user . ,user) (group . ,group)
             (supplementary-groups . ,supplementary-groups)
             (file-creation-mask . ,file-creation-mask)
             (log-file . ,log-file)))

(define* (make-kill-destructor #:optional signal #:key grace-period)
  '(kill-destructor))

;; A fictitious user: (name gid dir).
(define (getpwnam name) (list name 1234 (string-append "/home/" name)))
(define (passwd:gid pw) (cadr pw))
(define (passwd:dir pw) (caddr pw))
(define (getgrgid gid) (list "users" gid))
(define (group:name gr) (car gr))
