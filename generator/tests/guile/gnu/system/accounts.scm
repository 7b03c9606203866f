;;; Stand-in for (gnu system accounts), used only by windlass's tests:
;;; user-group and user-account with exactly Guix's fields.

(define-module (gnu system accounts)
  #:use-module (stub records)
  #:export (user-group
            user-group?
            user-group-name
            user-group-system?
            user-account
            user-account?))

(define (anything? x) #t)
(define (string-or-number? x) (or (string? x) (number? x)))

(define-stub-record user-group
  (name string?)
  (password anything? #f)
  (id anything? #f)
  (system? boolean? #f))

(define-stub-record user-account
  (name string?)
  (password anything? #f)
  (uid anything? #f)
  (group string-or-number?)
  (supplementary-groups list-of-strings? '())
  (comment string? "")
  (home-directory anything? #f)
  (create-home-directory? boolean? #t)
  (shell anything? "/bin/sh")
  (system? boolean? #f))

(define (user-group? x) (and (stub? x) (eq? (stub-type x) 'user-group)))
(define (user-account? x) (and (stub? x) (eq? (stub-type x) 'user-account)))
(define (user-group-name g) (stub-ref g 'name))
(define (user-group-system? g) (stub-ref g 'system?))
