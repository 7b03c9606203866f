;;; What the real Guix makes of windlass's Guix output, for
;;; generator/tests/oracle_guix.rs.
;;;
;;;   guile --no-auto-compile fold.scm STORE BASES NAMES
;;;
;;; Run in the oracle rootfs with the real Guix source and its compiled
;;; closure (tools/guix-go.sh), Shepherd 1.0.9 and a directory holding
;;; windlass/apps.scm (generated) and windlass/service.scm (modules/guix)
;;; on the load path.  It builds the operating-system of docs/guix.md
;;; around %windlass-app-services and windlass-service-type, folds its
;;; services down to the Shepherd's with (gnu services) and checks the
;;; graph with Guix's own assert-valid-graph, then reads what the Shepherd
;;; would run:
;;;
;;; * each service's start G-expression is turned into the S-expression
;;;   Guix would write, with file-like objects standing for store items:
;;;   a program-file becomes a script under STORE (as gexp->script would
;;;   write it, with the real Guix source as the imported modules' path),
;;;   a package or any other file-like object a path STORE/NAME, which
;;;   does not exist;
;;; * for each service NAMES lists (one per line; each must exist), that
;;;   S-expression is evaluated as the Shepherd would, with
;;;   fork+exec-command recorded (its keywords checked against those of
;;;   its definition in Shepherd's source), the timer and fork-exec constructors called for real (they
;;;   only build the start procedure) and recorded, and the account
;;;   database a fixed oci-container user; everything else (calendar-event,
;;;   command, cron-string->calendar-event) is Shepherd's own;
;;; * for a timer, Shepherd's own next-calendar-event gives the next
;;;   firings from each instant of BASES (`(YEAR MONTH DAY HOUR MINUTE
;;;   SECOND)' forms, UTC).
;;;
;;; Output, one fact per line, `KIND NAME FIELD' then the value as decimal
;;; code points (so that every byte is compared):
;;;   service NAME requirement R      every Shepherd service
;;;   exec NAME argv|env|user|group|directory V  a service's start command
;;;   timer NAME argv|env|user|group|max-duration|wait V
;;;   timer NAME firing "BASE WHEN"   (YYYY-MM-DD HH:MM:SS, UTC)
;;;   oci NAME option V               oci-container-configuration->options
(use-modules (gnu)
             (gnu system)
             (gnu services)
             (gnu services shepherd)
             (gnu services containers)
             (gnu services dbus)
             (gnu services desktop)
             (gnu services networking)
             (gnu services ssh)
             (gnu bootloader)
             (gnu bootloader grub)
             (gnu system file-systems)
             (guix gexp)
             (guix packages)
             (guix records)
             (srfi srfi-1)
             (srfi srfi-19)
             (ice-9 match)
             ((shepherd service timer)
              #:select (command-arguments command-user command-group
                        command-environment-variables))
             (windlass apps)
             (windlass service))

(define-values (store bases-file names-file)
  (match (command-line)
    ((_ store bases names) (values store bases names))))

(define names
  (call-with-input-file names-file
    (lambda (port)
      (let loop ((acc '()))
        (match ((@ (ice-9 rdelim) read-line) port)
          ((? eof-object?) (reverse acc))
          ("" (loop acc))
          (line (loop (cons line acc))))))))

;;; Facts.

(define (fact kind name field value)
  (display kind) (display " ") (display name) (display " ")
  (display field)
  (string-for-each (lambda (c)
                     (display " ")
                     (display (char->integer c)))
                   (if (string? value)
                       value
                       (call-with-output-string
                         (lambda (port) (write value port)))))
  (newline))

;;; Lowering, without a store.

(define gexp-input? (@@ (guix gexp) gexp-input?))
(define gexp-input-thing (@@ (guix gexp) gexp-input-thing))
(define gexp-output? (@@ (guix gexp) gexp-output?))
(define gexp-output-name (@@ (guix gexp) gexp-output-name))
(define gexp-references (@@ (guix gexp) gexp-references))
(define gexp-proc (@@ (guix gexp) gexp-proc))
(define %gexp-input (@@ (guix gexp) %gexp-input))
(define program-file-name (@@ (guix gexp) program-file-name))
(define program-file-gexp (@@ (guix gexp) program-file-gexp))
(define file-append-base (@@ (guix gexp) file-append-base))
(define file-append-suffix (@@ (guix gexp) file-append-suffix))

(define written 0)

(define (store-item name)
  (string-append store "/" name))

(define (write-program name gexp)
  ;; As gexp->script: the imported modules (here the real Guix source)
  ;; on the load path, then the expression.  A fresh file per program:
  ;; start and stop entrypoints share a name.
  (set! written (+ written 1))
  (let ((file (store-item (string-append (number->string written) "-"
                                         name))))
    (call-with-output-file file
      (lambda (port)
        (set-port-encoding! port "UTF-8")
        (write '(eval-when (expand load eval)
                  (set! %load-path (cons "/g/src" %load-path)))
               port)
        (newline port)
        (write (lower-gexp gexp) port)
        (newline port)))
    (chmod file #o555)
    file))

(define (object-name thing)
  ;; The name of a store item standing for THING: never followed into
  ;; the object itself (a package's inputs are a huge graph).
  (cond ((package? thing) (package-full-name thing "-"))
        ((plain-file? thing) (plain-file-name thing))
        ((computed-file? thing) (computed-file-name thing))
        ((scheme-file? thing) (scheme-file-name thing))
        ((local-file? thing) (local-file-name thing))
        ((record? thing)
         (symbol->string (record-type-name (record-type-descriptor thing))))
        (else "item")))

(define (lower-thing thing)
  (cond ((gexp? thing) (lower-gexp thing))
        ((program-file? thing)
         (write-program (program-file-name thing) (program-file-gexp thing)))
        ((file-append? thing)
         (apply string-append (lower-thing (file-append-base thing))
                (file-append-suffix thing)))
        (else (store-item (object-name thing)))))

(define (lower-reference ref)
  ;; As gexp->sexp's reference->sexp.
  (cond ((gexp-output? ref)
         `((@ (guile) getenv) ,(gexp-output-name ref)))
        ((gexp-input? ref)
         (let ((thing (gexp-input-thing ref)))
           (cond ((gexp? thing) (lower-gexp thing))
                 ((list? thing)
                  (map (lambda (x)
                         (if (or (symbol? x) (number? x) (boolean? x)
                                 (null? x) (array? x))
                             x
                             (lower-reference
                              (if (gexp-input? x) x (%gexp-input x "out" #f)))))
                       thing))
                 ((struct? thing) (lower-thing thing))
                 (else thing))))
        (else ref)))

(define (lower-gexp gexp)
  (apply (gexp-proc gexp) (map lower-reference (gexp-references gexp))))

;;; The Shepherd's side, recorded.

(define recorded #f)

;; The keywords a procedure of Shepherd's takes, read from its definition
;; in Shepherd's source (its modules load from source here, and an
;; interpreted procedure does not tell its keywords).
(define (source-keywords module-file name)
  (call-with-input-file (%search-load-path module-file)
    (lambda (port)
      (let loop ()
        (match (read port)
          ((? eof-object?) (error "no definition of" name module-file))
          (('define* (head . formals) . _)
           (if (eq? head name)
               (match (member #:key formals)
                 (#f '())
                 ((_ . keys)
                  (filter-map (match-lambda
                                ((? keyword?) #f)
                                ((key _) (symbol->keyword key))
                                ((? symbol? key) (symbol->keyword key)))
                              keys)))
               (loop)))
          (_ (loop)))))))

(define (keyword-alist args)
  ;; ARGS, a keyword argument list, as an alist.
  (let loop ((args args) (acc '()))
    (match args
      (() (reverse acc))
      (((? keyword? k) v . rest) (loop rest (acons k v acc))))))

(define (record-exec! command kw)
  ;; What a command is started with, from KW, its keyword alist.
  (set! recorded
        (list 'exec command
              (or (assq-ref kw #:environment-variables) '())
              (assq-ref kw #:user)
              (assq-ref kw #:group)
              (assq-ref kw #:directory))))

(define (shepherd-module)
  ;; A module as the Shepherd evaluates a service's start in: its own
  ;; procedures, except those that would start something, which record
  ;; what they are given. The timer and fork-exec constructors are
  ;; Shepherd's own (they only build the start procedure, and check their
  ;; keywords); fork+exec-command's keywords are checked against the real
  ;; one's.
  (let ((m (make-fresh-user-module))
        (timer-constructor
         (@ (shepherd service timer) make-timer-constructor))
        (forkexec-constructor
         (@ (shepherd service) make-forkexec-constructor))
        (fork+exec-keywords
         (source-keywords "shepherd/service.scm" 'fork+exec-command)))
    (eval '(use-modules (shepherd service)
                        (shepherd service timer)
                        (srfi srfi-1)
                        (ice-9 match))
          m)
    (module-define! m 'fork+exec-command
                    (lambda (command . args)
                      (let ((kw (keyword-alist args)))
                        (for-each (lambda (k)
                                    (unless (memq k fork+exec-keywords)
                                      (error (format #f "fork+exec-command: unknown keyword ~s" k))))
                                  (map car kw))
                        (record-exec! command kw)
                        0)))
    ;; The real constructors check their keywords themselves.
    (module-define! m 'make-timer-constructor
                    (lambda (event action . args)
                      (apply timer-constructor event action args)
                      (let ((kw (keyword-alist args)))
                        (set! recorded
                              (list 'timer event action
                                    (assq-ref kw #:max-duration)
                                    (assq-ref kw #:wait-for-termination?)))
                        (const #t))))
    (module-define! m 'make-forkexec-constructor
                    (lambda (command . args)
                      (apply forkexec-constructor command args)
                      (record-exec! command (keyword-alist args))
                      (const #t)))
    ;; The account database of a Guix System with oci-service-type.
    (module-define! m 'getpwnam
                    (lambda (name)
                      (vector name "x" 990 990 "" "/var/lib/oci-container"
                              "/run/current-system/profile/bin/nologin")))
    (module-define! m 'getgrgid
                    (lambda (gid) (vector "oci-container" "x" gid '())))
    m))

(define (show-date date) (date->string date "~Y-~m-~d ~H:~M:~S"))

(define bases
  (call-with-input-file bases-file
    (lambda (port)
      (let loop ((acc '()))
        (match (read port)
          ((? eof-object?) (reverse acc))
          ((y mo d h mi s) (loop (cons (make-date 0 s mi h d mo y 0) acc))))))))

(define next-calendar-event
  (@@ (shepherd service timer) next-calendar-event))

(define (report-timer name event action max-duration wait?)
  (let ((args (command-arguments action)))
    (for-each (lambda (a) (fact "timer" name "argv" a)) args)
    (for-each (lambda (e) (fact "timer" name "env" e))
              (command-environment-variables action))
    (fact "timer" name "user" (or (command-user action) ""))
    (fact "timer" name "group" (or (command-group action) ""))
    (fact "timer" name "max-duration" max-duration)
    (fact "timer" name "wait" wait?)
    (for-each
     (lambda (base)
       (let loop ((date base) (n 0))
         (when (< n 6)
           (let ((next (time-utc->date
                        (date->time-utc (next-calendar-event event date)) 0)))
             (fact "timer" name "firing"
                   (string-append (show-date base) "\t" (show-date next)))
             (loop next (+ n 1))))))
     bases)))

(define (report-service service)
  (let ((name (symbol->string (first (shepherd-service-provision service))))
        (start (shepherd-service-start service)))
    (for-each (lambda (r) (fact "service" name "requirement" (symbol->string r)))
              (shepherd-service-requirement service))
    (when (member name names)
      (set! recorded #f)
      (let* ((m (shepherd-module))
             (value (eval (lower-gexp start) m)))
        ;; A container's start is a procedure that runs the command.
        (when (procedure? value)
          (value))
        (match recorded
          (('exec command env user group directory)
           (for-each (lambda (a) (fact "exec" name "argv" a)) command)
           (for-each (lambda (e) (fact "exec" name "env" e)) env)
           (fact "exec" name "user" (or user ""))
           (fact "exec" name "group" (or group ""))
           (fact "exec" name "directory" (or directory "")))
          (('timer event action max-duration wait?)
           (report-timer name event action max-duration wait?))
          (_ (error "no command recorded for" name)))))))

;;; The operating-system of docs/guix.md.

(define windlass-package
  (computed-file "windlass" #~(mkdir #$output)))

(define os
  (operating-system
    (host-name "apps")
    (timezone "Europe/Berlin")
    (locale "en_US.utf8")
    (bootloader (bootloader-configuration
                 (bootloader grub-bootloader)
                 (targets (list "/dev/sda"))))
    (file-systems (cons (file-system
                          (device (file-system-label "root"))
                          (mount-point "/")
                          (type "ext4"))
                        %base-file-systems))
    (services
     (append
      %windlass-app-services
      (list (service windlass-service-type
                     (windlass-configuration (package windlass-package)))
            (service dhcpcd-service-type)
            (service dbus-root-service-type)
            (service elogind-service-type)
            (service openssh-service-type)
            (service rootless-podman-service-type)
            (service oci-service-type
                     (oci-configuration (runtime 'podman))))
      %base-services))))

(define shepherd-services
  (shepherd-configuration-services
   (service-value
    (fold-services (operating-system-services os)
                   #:target-type shepherd-root-service-type))))

;; Guix's own check, as when it writes the Shepherd's configuration.
((@@ (gnu services shepherd) assert-valid-graph) shepherd-services)

(for-each report-service shepherd-services)

(for-each (lambda (name)
            (unless (any (lambda (s)
                           (memq (string->symbol name)
                                 (shepherd-service-provision s)))
                         shepherd-services)
              (error "the folded system has no Shepherd service" name)))
          names)

;; The options of each container, as Guix's exported procedure computes
;; them, for a cross-check of the argv.
(for-each
 (lambda (service)
   (when (eq? (service-type-name (service-kind service)) 'windlass-containers)
     (for-each
      (lambda (config)
        ;; An environment entry is a G-expression (string-append ...).
        (for-each (lambda (o)
                    (fact "oci" (oci-container-configuration-provision config)
                          "option"
                          (if (gexp? o)
                              (eval (lower-gexp o) (current-module))
                              o)))
                  (oci-container-configuration->options config)))
      (oci-extension-containers (service-value service)))))
 %windlass-app-services)
