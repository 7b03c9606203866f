;;; Stand-in for (gnu services shepherd), used only by windlass's tests:
;;; shepherd-service and shepherd-action with exactly Guix's fields, the
;;; shepherd-timer procedure with Guix's signature (PROVISION SCHEDULE
;;; COMMAND #:requirement #:documentation), shepherd-trigger-action and
;;; shepherd-root-service-type.

(define-module (gnu services shepherd)
  #:use-module (gnu services)
  #:use-module (guix gexp)
  #:use-module (stub records)
  #:export (shepherd-root-service-type
            shepherd-service
            shepherd-service?
            shepherd-service-provision
            shepherd-service-requirement
            shepherd-service-documentation
            shepherd-service-start
            shepherd-service-stop
            shepherd-service-actions
            shepherd-service-modules
            shepherd-service-respawn?
            shepherd-service-one-shot?
            shepherd-service-auto-start?
            shepherd-action
            shepherd-action?
            shepherd-action-name
            shepherd-trigger-action
            shepherd-timer
            %default-modules))

(define %default-modules
  '((shepherd service)
    ((guix build utils) #:hide (delete))
    (guix build syscalls)))

(define (provision? x)
  (and (pair? x) (list-of-symbols? x)))
(define (gexp-or-false? x) (or (not x) (gexp? x)))
(define (anything? x) #t)

(define-stub-record shepherd-action
  (name symbol?)
  (procedure gexp?)
  (documentation string?))

(define (shepherd-action? x)
  (and (stub? x) (eq? (stub-type x) 'shepherd-action)))
(define (shepherd-action-name a) (stub-ref a 'name))

(define-stub-record shepherd-service
  (documentation string? "[No documentation.]")
  (provision provision?)
  (requirement list-of-symbols? '())
  (one-shot? boolean? #f)
  (respawn? boolean? #t)
  (respawn-limit anything? #f)
  (respawn-delay anything? #f)
  (free-form gexp-or-false? #f)
  (start gexp? #~(const #t))
  (stop gexp? #~(const #f))
  (actions (list-of shepherd-action?) '())
  (auto-start? boolean? #t)
  (modules list? %default-modules))

(define (shepherd-service? x)
  (and (stub? x) (eq? (stub-type x) 'shepherd-service)))
(define (shepherd-service-provision s) (stub-ref s 'provision))
(define (shepherd-service-requirement s) (stub-ref s 'requirement))
(define (shepherd-service-documentation s) (stub-ref s 'documentation))
(define (shepherd-service-start s) (stub-ref s 'start))
(define (shepherd-service-stop s) (stub-ref s 'stop))
(define (shepherd-service-actions s) (stub-ref s 'actions))
(define (shepherd-service-modules s) (stub-ref s 'modules))
(define (shepherd-service-respawn? s) (stub-ref s 'respawn?))
(define (shepherd-service-one-shot? s) (stub-ref s 'one-shot?))
(define (shepherd-service-auto-start? s) (stub-ref s 'auto-start?))

(define shepherd-trigger-action
  (shepherd-action
   (name 'trigger)
   (documentation "Trigger immediate execution of this timer.")
   (procedure #~trigger-timer)))

(define* (shepherd-timer provision schedule command
                         #:key
                         (requirement '())
                         (documentation "Periodically run a command."))
  (unless (or (string? schedule) (gexp? schedule))
    (error "shepherd-timer: the schedule must be a cron string or a gexp"
           schedule))
  (unless (gexp? command)
    (error "shepherd-timer: the command must be a list-valued gexp" command))
  (shepherd-service
   (provision provision)
   (requirement requirement)
   (modules '((shepherd service timer)))
   (start #~(make-timer-constructor
             #$(if (string? schedule)
                   #~(cron-string->calendar-event #$schedule)
                   schedule)
             (command '(#$@(gexp->sexp command)))
             #:wait-for-termination? #t))
   (stop #~(make-timer-destructor))
   (documentation documentation)
   (actions (list shepherd-trigger-action))))

(define shepherd-root-service-type
  (service-type (name 'shepherd-root)
                (extensions '())
                (compose (lambda (l) (apply append l)))
                (extend append)
                (default-value '())
                (description "Run the GNU Shepherd as PID 1.")))
