;;; windlass for Guix System: windlass-service-type runs the windlass host
;;; agent (windlassd) under the Shepherd, installs its D-Bus policy, creates
;;; the group allowed to call its mutating methods, and runs the release
;;; sweep (windlassctl sweep) on a Shepherd timer.
;;;
;;; Usage, in an operating-system declaration:
;;;
;;;   (use-modules (windlass service))
;;;   (service windlass-service-type
;;;            (windlass-configuration
;;;              (package windlass)))     ;a package providing windlass
;;;
;;; The apps themselves come from the generator's guix/windlass-apps.scm
;;; (module (windlass apps), %windlass-app-services); see docs/guix.md.

(define-module (windlass service)
  #:use-module (gnu services)
  #:use-module (gnu services configuration)
  #:use-module (gnu services dbus)
  #:use-module (gnu services shepherd)
  #:use-module (gnu system shadow)
  #:use-module (guix gexp)
  #:export (windlass-configuration
            windlass-configuration?
            windlass-configuration-package
            windlass-configuration-group
            windlass-configuration-state-directory
            windlass-configuration-sweep-schedule
            windlass-configuration-apps
            windlass-service-type))

(define (gexp-or-string? value)
  (or (gexp? value) (string? value)))

(define (file-like-or-false? value)
  (or (not value) (file-like? value)))

(define-configuration/no-serialization windlass-configuration
  (package
   (file-like)
   "The windlass package: it provides @command{windlassd},
@command{windlassctl} and the D-Bus policy
@file{share/dbus-1/system.d/io.windlass.Agent1.conf}.")
  (group
   (string "windlass")
   "The group whose members (besides root) may call windlassd's mutating
D-Bus methods.  It is created as a system group.")
  (state-directory
   (string "/var/lib/windlass")
   "Where windlassd keeps its operation records and generations.")
  (sweep-schedule
   (gexp-or-string
    #~(calendar-event #:days-of-week '(monday) #:hours '(0) #:minutes '(0)))
   "When to run @command{windlassctl sweep}: a string in Vixie cron syntax
such as @code{\"0 4 * * 1\"}, or a G-expression evaluating to a Shepherd
calendar event.  The default, Mondays at 00:00, is systemd's
@code{weekly}.")
  (apps
   (file-like-or-false #f)
   "The fleet directory the apps were generated from, as a file-like object
such as @code{(local-file \"fleet\" #:recursive? #t)}, or @code{#f}.  When
set, it is installed as @file{/etc/windlass/fleet}.  The app services
themselves come from @code{%windlass-app-services}.")
  (cutover-targets
   (file-like-or-false #f)
   "A directory of cutover targets, one @file{NAME.toml} each (link, unit,
health_http, deadline, keep, max_bytes, self_test_timeout, agent; see
docs/agent.md), as a file-like object such as @code{(local-file \"targets\"
#:recursive? #t)}, or @code{#f}.  When set, it is installed as
@file{/etc/windlass/targets}, where @command{windlassd} reads them."))

(define (windlass-shepherd-services config)
  (let ((package (windlass-configuration-package config))
        (group (windlass-configuration-group config))
        (state-directory (windlass-configuration-state-directory config))
        (schedule (windlass-configuration-sweep-schedule config)))
    (list
     (shepherd-service
      (documentation "The windlass host agent: switches generations over
D-Bus, gated on health, and rolls back on its own.")
      (provision '(windlassd))
      (requirement '(dbus-system user-processes))
      (start #~(make-forkexec-constructor
                (list #$(file-append package "/bin/windlassd")
                      "--bus" "system"
                      "--state-dir" #$state-directory
                      "--group" #$group
                      "--platform" "guix")))
      (stop #~(make-kill-destructor))
      (respawn? #t))
     (shepherd-timer '(windlass-sweep)
                     schedule
                     #~(#$(file-append package "/bin/windlassctl") "sweep")
                     #:requirement '(windlassd)
                     #:documentation "Run a windlass sweep: move the apps
that track releases to their newest release, kept only when healthy."))))

(define (windlass-accounts config)
  (list (user-group
         (name (windlass-configuration-group config))
         (system? #t))))

(define (windlass-activation config)
  ;; windlassd's records may name secrets' paths: root only.
  #~(let ((directory #$(windlass-configuration-state-directory config)))
      (unless (file-exists? directory)
        (mkdir directory))
      (chmod directory #o700)))

(define (windlass-etc-files config)
  (let ((apps (windlass-configuration-apps config))
        (targets (windlass-configuration-cutover-targets config)))
    (append (if apps
                (list (list "windlass/fleet" apps))
                '())
            (if targets
                (list (list "windlass/targets" targets))
                '()))))

(define (windlass-packages config)
  (list (windlass-configuration-package config)))

(define windlass-service-type
  (service-type
   (name 'windlass)
   (extensions
    (list (service-extension shepherd-root-service-type
                             windlass-shepherd-services)
          ;; The policy file is the package's
          ;; share/dbus-1/system.d/io.windlass.Agent1.conf.
          (service-extension dbus-root-service-type windlass-packages)
          (service-extension account-service-type windlass-accounts)
          (service-extension activation-service-type windlass-activation)
          (service-extension profile-service-type windlass-packages)
          (service-extension etc-service-type windlass-etc-files)))
   (description "Run windlassd, the windlass host agent, with its D-Bus
policy, its group and a Shepherd timer for release sweeps.")))
