;;; Loads modules/guix/windlass/service.scm against the Guix stand-ins,
;;; instantiates windlass-service-type with a default and a custom
;;; configuration, and reports what each extension provides, for
;;; generator/tests/oracle_guix.rs.

(use-modules (windlass service)
             (gnu services)
             (gnu services shepherd)
             (gnu system shadow)
             (guix gexp)
             (stub records)
             (stub dump)
             (ice-9 match)
             (srfi srfi-1))

(define package (plain-file "windlass" ""))

(define configurations
  `(("default" . ,(windlass-configuration (package package)))
    ("custom" . ,(windlass-configuration
                  (package package)
                  (group "ops")
                  (state-directory "/srv/windlass")
                  (sweep-schedule "0 4 * * 1")
                  (apps (local-file "fleet" "fleet" #:recursive? #t))
                  (cutover-targets
                   (local-file "targets" "targets" #:recursive? #t))))))

(define (dump-shepherd label s)
  (define name (car (shepherd-service-provision s)))
  (define (put field value)
    (emit label name field value))
  (put "requirement"
       (string-join (map symbol->string (shepherd-service-requirement s))))
  (put "respawn?" (shepherd-service-respawn? s))
  (for-each (lambda (a) (put "action" (shepherd-action-name a)))
            (shepherd-service-actions s))
  (run-gexp (shepherd-service-stop s))
  (match (run-gexp (shepherd-service-start s))
    (('forkexec ('command . argv) . _)
     (for-each (lambda (a) (put "argv" a)) argv))
    (('timer ('event . event) ('action . action) . options)
     (put "event" (match event
                    (('cron str) str)
                    (('calendar-event . fields)
                     (string-join
                      (filter-map (match-lambda
                                    ((f . 'any) #f)
                                    ((f . v) (format #f "~a=~a" f v)))
                                  fields)
                      " "))))
     (match action
       (('command ('line . line) . _)
        (for-each (lambda (a) (put "argv" a)) line))))))

(for-each
 (match-lambda
   ((label . config)
    (let ((type windlass-service-type)
          (svc (service windlass-service-type config)))
      (emit label "type" "name" (service-type-name type))
      (for-each
       (lambda (ext)
         (define target (service-type-name (service-extension-target ext)))
         (define value ((service-extension-compute ext) (service-value svc)))
         (emit label "extends" "target" target)
         (case target
           ((shepherd-root)
            (unless (and (list? value) (every shepherd-service? value))
              (error "not a list of Shepherd services" value))
            (for-each (lambda (s) (dump-shepherd label s)) value))
           ((dbus profile)
            (for-each (lambda (p) (emit label target "package" p)) value))
           ((account)
            (for-each (lambda (g)
                        (unless (user-group? g) (error "not a user-group" g))
                        (emit label "group" "name" (user-group-name g))
                        (emit label "group" "system?" (user-group-system? g)))
                      value))
           ((activate)
            (unless (gexp? value) (error "activation is not a gexp" value))
            (emit label "activation" "sexp" (gexp->sexp value)))
           ((etc)
            (for-each (match-lambda
                        (((? string? file) (? file-like? obj))
                         (emit label "etc" file obj)))
                      value))
           (else (error "unexpected extension" target))))
       (service-type-extensions type)))))
 configurations)
