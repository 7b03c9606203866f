;;; Stand-in for (gnu services dbus), used only by windlass's tests.  Its
;;; extensions are lists of packages whose etc/dbus-1/system.d and
;;; share/dbus-1/system.d directories hold D-Bus policy files.

(define-module (gnu services dbus)
  #:use-module (gnu services)
  #:export (dbus-root-service-type))

(define dbus-root-service-type
  (service-type (name 'dbus)
                (extensions '())
                (compose (lambda (l) (apply append l)))
                (extend append)
                (default-value '())
                (description "Run the system-wide D-Bus message bus.")))
