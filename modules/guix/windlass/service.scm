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
;;;
;;; Fleet rollouts over NATS (docs/fleet.md): windlass-fleet-service-type
;;; runs windlass-fleetd, this host's member of the fleet, as the system
;;; user windlass-fleet in windlassd's group; it needs windlass-service-type
;;; on the same host.  windlass-coordinator-service-type runs
;;; windlass-coordinator, which drives the rollouts, as the system user
;;; windlass-coordinator; it needs no windlassd.
;;;
;;;   (service windlass-fleet-service-type
;;;            (windlass-fleet-configuration
;;;              (package windlass)
;;;              (nats-url "nats://nats.example:4222")
;;;              (credentials-file "/etc/windlass/fleetd.creds")
;;;              (labels '(("site" . "north")))))

(define-module (windlass service)
  #:use-module (gnu services)
  #:use-module (gnu services configuration)
  #:use-module (gnu services dbus)
  #:use-module (gnu services shepherd)
  #:use-module (gnu system shadow)
  #:use-module ((gnu packages admin) #:select (shadow))
  #:use-module (guix gexp)
  #:use-module (ice-9 match)
  #:use-module (srfi srfi-1)
  #:export (windlass-configuration
            windlass-configuration?
            windlass-configuration-package
            windlass-configuration-group
            windlass-configuration-state-directory
            windlass-configuration-sweep-schedule
            windlass-configuration-apps
            windlass-service-type

            windlass-fleet-configuration
            windlass-fleet-configuration?
            windlass-fleet-configuration-package
            windlass-fleet-configuration-group
            windlass-fleet-configuration-nats-url
            windlass-fleet-configuration-credentials-file
            windlass-fleet-configuration-user
            windlass-fleet-configuration-password-file
            windlass-fleet-configuration-host
            windlass-fleet-configuration-labels
            windlass-fleet-configuration-heartbeat-interval
            windlass-fleet-configuration-extra-arguments
            windlass-fleet-service-type

            windlass-coordinator-configuration
            windlass-coordinator-configuration?
            windlass-coordinator-configuration-package
            windlass-coordinator-configuration-nats-url
            windlass-coordinator-configuration-credentials-file
            windlass-coordinator-configuration-lease-ttl
            windlass-coordinator-configuration-extra-arguments
            windlass-coordinator-service-type))

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


;;;
;;; Fleet rollouts: windlass-fleetd and windlass-coordinator.
;;;

(define (ascii-id-char? c)
  (or (char<=? #\a c #\z) (char<=? #\0 c #\9) (char=? c #\-)))

(define (fleet-host? value)
  ;; #f (the kernel's host name when fleetd starts, lower-cased) or a
  ;; fleet host id: 1 to 63 of a-z, 0-9 and -, not starting with -.
  (or (not value)
      (and (string? value)
           (<= 1 (string-length value) 63)
           (string-every ascii-id-char? value)
           (not (char=? (string-ref value 0) #\-)))))

(define (secret-file? value)
  ;; #f or the absolute file name of a secret outside the store, read by
  ;; the daemon when it starts.  Never a file-like object: that would copy
  ;; the secret into the world-readable store.
  (or (not value)
      (and (string? value)
           (string-prefix? "/" value)
           (not (string-prefix? "/gnu/store/" value)))))

(define (string-or-false? value)
  (or (not value) (string? value)))

(define (nats-url? value)
  ;; One server or several, comma-separated, none with a token or
  ;; user:password before `@': the URL is written into the store.
  (define (without-user-info? url)
    (let ((scheme-end (string-contains url "://")))
      (or (not scheme-end)
          (let ((authority (car (string-split
                                 (substring url (+ scheme-end 3)) #\/))))
            (not (string-index authority #\@))))))
  (and (string? value)
       (every without-user-info? (string-split value #\,))))

(define (fleet-labels? value)
  ;; An alist of (KEY . VALUE) strings, KEY non-empty and without `='.
  (and (list? value)
       (every (match-lambda
                (((? string? key) . (? string?))
                 (and (not (string-null? key))
                      (not (string-index key #\=))))
                (_ #f))
              value)))

(define (positive-seconds? value)
  (and (exact-integer? value) (positive? value)))

(define (lease-ttl? value)
  ;; What windlass-coordinator --lease-ttl takes: N, Ns, Nm or Nh, not 0.
  (and (string? value)
       (let* ((n (string-length value))
              (unit? (and (> n 0)
                          (memv (string-ref value (- n 1)) '(#\s #\m #\h))))
              (digits (if unit? (substring value 0 (- n 1)) value)))
         (and (not (string-null? digits))
              (string-every (lambda (c) (char<=? #\0 c #\9)) digits)
              (positive? (string->number digits))))))

(define-configuration/no-serialization windlass-fleet-configuration
  (package
   (file-like)
   "The windlass package: it provides @command{windlass-fleetd}.")
  (group
   (string "windlass")
   "windlassd's group (the @code{group} of @code{windlass-configuration}),
whose members its D-Bus policy lets carry out orders; the
@code{windlass-fleet} user joins it.")
  (nats-url
   (nats-url "nats://127.0.0.1:4222")
   "The NATS server (JetStream, nats-server 2.10 or later).  It is written
into the store, so it must not carry a token or a password: give
@code{credentials-file}, or @code{user} and @code{password-file}.")
  (credentials-file
   (secret-file #f)
   "A NATS credentials file (user JWT and nkey seed), as an absolute file
name outside the store, or @code{#f}.  @command{windlass-fleetd} reads it
when it starts, as the @code{windlass-fleet} user: make it
@code{root:windlass-fleet}, mode 0640.  It is never copied into the
store.")
  (user
   (string-or-false #f)
   "A NATS user of nats-server's @code{authorization @{ users @}} (the
permission block @command{windlass-fleet permissions HOST} prints), with
@code{password-file}; the alternative to @code{credentials-file}.")
  (password-file
   (secret-file #f)
   "The NATS user's password (the file's first line), as an absolute file
name outside the store, readable by the @code{windlass-fleet} user, or
@code{#f}.")
  (host
   (fleet-host #f)
   "This host's id in the fleet: 1 to 63 of a-z, 0-9 and @code{-},
starting with a letter or digit.  @code{#f}: the kernel's host name when
@command{windlass-fleetd} starts, lower-cased.")
  (labels
   (fleet-labels '())
   "Labels of this host, which a rollout's waves select hosts by, as an
alist such as @code{'((\"site\" . \"north\"))}.")
  (heartbeat-interval
   (positive-seconds 30)
   "Seconds between heartbeats.  A host not heard from in three intervals
counts as unavailable: when this is not 30, give the rollouts the same
@code{policy.heartbeat_interval}.")
  (extra-arguments
   (list-of-strings '())
   "Further arguments of @command{windlass-fleetd}."))

(define (windlass-fleetd-arguments config)
  (let ((host (windlass-fleet-configuration-host config))
        (credentials (windlass-fleet-configuration-credentials-file config))
        (user (windlass-fleet-configuration-user config))
        (password (windlass-fleet-configuration-password-file config)))
    (when (and credentials user)
      (error "windlass-fleet-configuration: give credentials-file or user \
and password-file, not both"))
    (unless (eq? (not user) (not password))
      (error "windlass-fleet-configuration: user and password-file go \
together"))
    (append (list "--bus" "system"
                  "--state" "/var/lib/windlass-fleet"
                  "--nats" (windlass-fleet-configuration-nats-url config)
                  "--heartbeat-interval"
                  (number->string
                   (windlass-fleet-configuration-heartbeat-interval config)))
            (if host (list "--host" host) '())
            (append-map (match-lambda
                          ((key . value)
                           (list "--label" (string-append key "=" value))))
                        (windlass-fleet-configuration-labels config))
            (if credentials (list "--creds" credentials) '())
            (if user (list "--user" user "--password-file" password) '())
            (windlass-fleet-configuration-extra-arguments config))))

(define (windlass-fleet-shepherd-services config)
  (let ((package (windlass-fleet-configuration-package config))
        (group (windlass-fleet-configuration-group config))
        (arguments (windlass-fleetd-arguments config)))
    (list
     (shepherd-service
      (documentation "windlass-fleetd: this host's member of the windlass
fleet.  It publishes the host's heartbeat to NATS and has windlassd carry
out the rollout orders addressed to the host.")
      (provision '(windlass-fleetd))
      (requirement '(user-processes networking windlassd))
      (start #~(make-forkexec-constructor
                (list #$(file-append package "/bin/windlass-fleetd")
                      #$@arguments)
                #:user "windlass-fleet"
                #:group "windlass-fleet"
                #:supplementary-groups '#$(list group)
                #:file-creation-mask #o077))
      (stop #~(make-kill-destructor))
      (respawn? #t)))))

(define (windlass-fleet-accounts config)
  (list (user-group
         (name "windlass-fleet")
         (system? #t))
        (user-account
         (name "windlass-fleet")
         (group "windlass-fleet")
         (supplementary-groups
          (list (windlass-fleet-configuration-group config)))
         (system? #t)
         (comment "windlass fleet member (windlass-fleetd)")
         (home-directory "/var/empty")
         (create-home-directory? #f)
         (shell (file-append shadow "/sbin/nologin")))))

(define (windlass-fleet-activation config)
  ;; fleetd's state (state.json, outbox/): its own user only.
  #~(let ((directory "/var/lib/windlass-fleet")
          (user (getpwnam "windlass-fleet")))
      (unless (file-exists? directory)
        (mkdir directory))
      (chown directory (passwd:uid user) (passwd:gid user))
      (chmod directory #o700)))

(define windlass-fleet-service-type
  (service-type
   (name 'windlass-fleet)
   (extensions
    (list (service-extension shepherd-root-service-type
                             windlass-fleet-shepherd-services)
          (service-extension account-service-type windlass-fleet-accounts)
          (service-extension activation-service-type
                             windlass-fleet-activation)))
   (description "Run windlass-fleetd, this host's member of a windlass
fleet: heartbeats and rollout orders over NATS, carried out by the local
windlassd (which @code{windlass-service-type} runs).")))

(define-configuration/no-serialization windlass-coordinator-configuration
  (package
   (file-like)
   "The windlass package: it provides @command{windlass-coordinator}.")
  (nats-url
   (nats-url "nats://127.0.0.1:4222")
   "The NATS server.  It is written into the store, so it must not carry a
token or a password: give @code{credentials-file}.")
  (credentials-file
   (secret-file #f)
   "A NATS credentials file for the coordinator's user, as an absolute
file name outside the store, readable by the @code{windlass-coordinator}
user (@code{root:windlass-coordinator}, mode 0640), or @code{#f}.  It is
never copied into the store.")
  (lease-ttl
   (lease-ttl "10s")
   "The lease TTL (@code{10s}, @code{1m}, @code{1h} or seconds): how long a
stopped coordinator holds the fleet before another takes over.  It must be
the lease bucket's, as created by @command{windlass-fleet init
--lease-ttl}.")
  (extra-arguments
   (list-of-strings '())
   "Further arguments of @command{windlass-coordinator}, such as
@code{'(\"--holder\" \"ops-1\")}."))

(define (windlass-coordinator-shepherd-services config)
  (let ((package (windlass-coordinator-configuration-package config))
        (credentials (windlass-coordinator-configuration-credentials-file
                      config)))
    (list
     (shepherd-service
      (documentation "windlass-coordinator: drives the windlass fleet's
rollouts wave by wave while it holds the lease.")
      (provision '(windlass-coordinator))
      (requirement '(user-processes networking))
      (start #~(make-forkexec-constructor
                (list #$(file-append package "/bin/windlass-coordinator")
                      "--nats"
                      #$(windlass-coordinator-configuration-nats-url config)
                      "--lease-ttl"
                      #$(windlass-coordinator-configuration-lease-ttl config)
                      #$@(if credentials (list "--creds" credentials) '())
                      #$@(windlass-coordinator-configuration-extra-arguments
                          config))
                #:user "windlass-coordinator"
                #:group "windlass-coordinator"
                #:file-creation-mask #o077))
      (stop #~(make-kill-destructor))
      (respawn? #t)))))

(define (windlass-coordinator-accounts config)
  (list (user-group
         (name "windlass-coordinator")
         (system? #t))
        (user-account
         (name "windlass-coordinator")
         (group "windlass-coordinator")
         (system? #t)
         (comment "windlass fleet coordinator")
         (home-directory "/var/empty")
         (create-home-directory? #f)
         (shell (file-append shadow "/sbin/nologin")))))

(define windlass-coordinator-service-type
  (service-type
   (name 'windlass-coordinator)
   (extensions
    (list (service-extension shepherd-root-service-type
                             windlass-coordinator-shepherd-services)
          (service-extension account-service-type
                             windlass-coordinator-accounts)))
   (description "Run windlass-coordinator, which rolls releases out across
a windlass fleet wave by wave; a lease in NATS lets one of several act.")))
