;;; Stand-in for (gnu services containers), used only by windlass's tests.
;;;
;;; The record constructors accept exactly the fields of current Guix
;;; (gnu/services/containers.scm, guix-ru/guix commit
;;; 3b774d925d59449893eb7fdfe84fbdfc6f592917), with the value types Guix
;;; checks: oci-container-configuration, oci-network-configuration,
;;; oci-volume-configuration, oci-extension and oci-configuration.

(define-module (gnu services containers)
  #:use-module (gnu services)
  #:use-module (gnu services shepherd)
  #:use-module (guix gexp)
  #:use-module (stub records)
  #:export (oci-container-configuration
            oci-container-configuration?
            oci-network-configuration
            oci-network-configuration?
            oci-volume-configuration
            oci-volume-configuration?
            oci-extension
            oci-extension?
            oci-configuration
            oci-service-type
            rootless-podman-configuration
            rootless-podman-service-type))

(define (string-or-list-of-strings? x)
  (or (string? x) (list-of-strings? x)))
(define (lowerable? x) (or (string? x) (gexp? x) (file-like? x)))
(define (pair-member? x) (lowerable? x))
(define (mixed-list? x)
  ;; Guix: "a list of pairs or strings, even mixed"; pair members are
  ;; strings, gexps or file-like objects.
  ((list-of (lambda (e)
              (or (string? e)
                  (and (pair? e) (pair-member? (car e)) (pair-member? (cdr e))))))
   x))
(define extra-arguments? (list-of lowerable?))

(define-stub-record oci-container-configuration
  (user string? %unset)
  (group string? %unset)
  (command list-of-strings? '())
  (entrypoint string-or-list-of-strings? %unset)
  (host-environment mixed-list? '())
  (environment mixed-list? '())
  (image string?)
  (provision string? %unset)
  (requirement list-of-symbols? '())
  (log-file string? %unset)
  (auto-start? boolean? #t)
  (respawn? boolean? #f)
  (shepherd-actions (list-of shepherd-action?) '())
  (network string? %unset)
  (ports mixed-list? '())
  (volumes mixed-list? '())
  (container-user string? %unset)
  (workdir string? %unset)
  (extra-arguments extra-arguments? '()))

(define-stub-record oci-network-configuration
  (name string?)
  (driver string? %unset)
  (gateway string? %unset)
  (internal? boolean? #f)
  (ip-range string? %unset)
  (ipam-driver string? %unset)
  (ipv6? boolean? #f)
  (subnet string? %unset)
  (labels mixed-list? '())
  (extra-arguments extra-arguments? '()))

(define-stub-record oci-volume-configuration
  (name string?)
  (labels mixed-list? '())
  (extra-arguments extra-arguments? '()))

(define (record-of type)
  (lambda (x) (and (stub? x) (eq? (stub-type x) type))))
(define oci-container-configuration? (record-of 'oci-container-configuration))
(define oci-network-configuration? (record-of 'oci-network-configuration))
(define oci-volume-configuration? (record-of 'oci-volume-configuration))
(define oci-extension? (record-of 'oci-extension))

(define-stub-record oci-extension
  (containers (list-of oci-container-configuration?) '())
  (networks (list-of oci-network-configuration?) '())
  (volumes (list-of oci-volume-configuration?) '()))

(define (oci-runtime? x) (memq x '(docker podman)))
(define (anything? x) #t)

(define-stub-record oci-configuration
  (runtime oci-runtime? 'docker)
  (runtime-cli anything? %unset)
  (runtime-extra-arguments list? '())
  (user string? "oci-container")
  (group string? %unset)
  (subuids-range anything? %unset)
  (subgids-range anything? %unset)
  (containers (list-of oci-container-configuration?) '())
  (networks (list-of oci-network-configuration?) '())
  (volumes (list-of oci-volume-configuration?) '())
  (verbose? boolean? #f)
  (home-service? boolean? #f))

(define-stub-record rootless-podman-configuration
  (podman anything? #f)
  (group-name string? "cgroup")
  (containers-registries anything? #f)
  (containers-storage anything? #f)
  (containers-policy anything? #f)
  (pam-limits list? '())
  (subgids list? '())
  (subuids list? '()))

(define oci-service-type
  (service-type (name 'oci)
                (extensions
                 (list (service-extension shepherd-root-service-type
                                          (lambda (config) '()))))
                (compose identity)
                (extend (lambda (config extensions) config))
                (default-value (oci-configuration))
                (description "Provision OCI containers, networks and volumes.")))

(define rootless-podman-service-type
  (service-type (name 'rootless-podman)
                (extensions '())
                (default-value (rootless-podman-configuration))
                (description "Configure rootless Podman.")))
