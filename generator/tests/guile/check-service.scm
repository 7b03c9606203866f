;;; Loads modules/guix/windlass/service.scm against the Guix stand-ins,
;;; instantiates windlass-service-type, windlass-fleet-service-type and
;;; windlass-coordinator-service-type with a default and a custom
;;; configuration each, and reports what each extension provides, for
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
  `(("default" ,windlass-service-type
     ,(windlass-configuration (package package)))
    ("custom" ,windlass-service-type
     ,(windlass-configuration
       (package package)
       (group "ops")
       (state-directory "/srv/windlass")
       (sweep-schedule "0 4 * * 1")
       (apps (local-file "fleet" "fleet" #:recursive? #t))
       (cutover-targets
        (local-file "targets" "targets" #:recursive? #t))))
    ("fleet-default" ,windlass-fleet-service-type
     ,(windlass-fleet-configuration (package package)))
    ("fleet-custom" ,windlass-fleet-service-type
     ,(windlass-fleet-configuration
       (package package)
       (group "ops")
       (nats-url "nats://nats.example:4222")
       (credentials-file "/etc/windlass/fleetd.creds")
       (host "kiosk-01")
       (labels '(("site" . "north") ("note" . "a \"b\" $HOME = é")))
       (heartbeat-interval 45)
       (extra-arguments '("--label" "from-extra=1"))))
    ("fleet-user" ,windlass-fleet-service-type
     ,(windlass-fleet-configuration
       (package package)
       (user "kiosk-01")
       (password-file "/etc/windlass/fleetd.password")))
    ("coordinator-default" ,windlass-coordinator-service-type
     ,(windlass-coordinator-configuration (package package)))
    ("coordinator-custom" ,windlass-coordinator-service-type
     ,(windlass-coordinator-configuration
       (package package)
       (nats-url "nats://nats.example:4222")
       (credentials-file "/etc/windlass/coordinator.creds")
       (lease-ttl "30s")
       (extra-arguments '("--holder" "ops-1"))))))

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
    (('forkexec ('command . argv) . options)
     (for-each (lambda (a) (put "argv" a)) argv)
     (for-each (match-lambda
                 (('supplementary-groups . groups)
                  (for-each (lambda (g) (put "supplementary-group" g)) groups))
                 ((option . value)
                  (when value (put (symbol->string option) value))))
               options))
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
   ((label type config)
    (let ((svc (service type config)))
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
            (for-each
             (lambda (a)
               (cond
                ((user-group? a)
                 (emit label "group" "name" (user-group-name a))
                 (emit label "group" "system?" (user-group-system? a)))
                ((user-account? a)
                 (let ((name (string-append "user:" (stub-ref a 'name))))
                   (for-each (lambda (field)
                               (emit label name (symbol->string field)
                                     (stub-ref a field)))
                             '(group system? home-directory
                               create-home-directory? shell))
                   (for-each (lambda (g)
                               (emit label name "supplementary-group" g))
                             (stub-ref a 'supplementary-groups))))
                (else (error "not an account or a group" a))))
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
