;;; Stand-in for (gnu services), used only by windlass's tests: the
;;; service-type record with exactly the fields Guix documents (name,
;;; extensions, compose, extend, default-value, description; location is
;;; innate and cannot be given), service-extension, service, simple-service
;;; and the core service types the windlass modules extend.

(define-module (gnu services)
  #:use-module (stub records)
  #:use-module (srfi srfi-1)
  #:use-module (srfi srfi-9)
  #:export (service-type
            service-type?
            service-type-name
            service-type-extensions
            service-type-compose
            service-type-extend
            service-type-default-value
            service-type-description

            service-extension
            service-extension?
            service-extension-target
            service-extension-compute

            service
            service?
            service-kind
            service-value

            simple-service

            etc-service-type
            activation-service-type
            profile-service-type))

(define-record-type <service-extension>
  (%service-extension target compute)
  service-extension?
  (target service-extension-target)
  (compute service-extension-compute))

(define &no-default-value '(no default value))

(define (procedure-or-false? x) (or (not x) (procedure? x)))
(define (anything? x) #t)

(define-stub-record service-type
  (name symbol?)
  (extensions (list-of service-extension?))
  (compose procedure-or-false? #f)
  (extend procedure-or-false? #f)
  (default-value anything? &no-default-value)
  (description string?))

(define (service-type? x)
  (and (stub? x) (eq? (stub-type x) 'service-type)))

(define (service-type-name t) (stub-ref t 'name))
(define (service-type-extensions t) (stub-ref t 'extensions))
(define (service-type-compose t) (stub-ref t 'compose))
(define (service-type-extend t) (stub-ref t 'extend))
(define (service-type-default-value t) (stub-ref t 'default-value))
(define (service-type-description t) (stub-ref t 'description))

(define (service-extension target compute)
  (unless (service-type? target)
    (error "service-extension: not a service type" target))
  (unless (procedure? compute)
    (error "service-extension: not a procedure" compute))
  (%service-extension target compute))

(define-record-type <service>
  (%make-service type value)
  service?
  (type service-kind)
  (value service-value))

(define (make-service type value)
  (unless (service-type? type)
    (error "service: not a service type" type))
  (%make-service type value))

(define-syntax service
  (syntax-rules ()
    ((_ type value) (make-service type value))
    ((_ type)
     (let ((t type))
       (when (eq? (service-type-default-value t) &no-default-value)
         (error (format #f "no value specified for service of type '~a'"
                        (service-type-name t))))
       (make-service t (service-type-default-value t))))))

(define (simple-service name target value)
  (unless (symbol? name)
    (error "simple-service: the name must be a symbol" name))
  (make-service (service-type (name name)
                              (extensions
                               (list (service-extension target identity)))
                              (description "This is a simple service."))
                value))

(define etc-service-type
  (service-type (name 'etc)
                (extensions '())
                (compose concatenate)
                (extend append)
                (default-value '())
                (description "Populate /etc.")))

(define activation-service-type
  (service-type (name 'activate)
                (extensions '())
                (compose identity)
                (extend append)
                (description "Run activation snippets.")))

(define profile-service-type
  (service-type (name 'profile)
                (extensions '())
                (compose concatenate)
                (extend append)
                (default-value '())
                (description "Populate the system profile.")))

