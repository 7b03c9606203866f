;;; Stand-in for (gnu system shadow), used only by windlass's tests: it
;;; re-exports the account records, as Guix does, and defines
;;; account-service-type, whose extensions are lists of user-account and
;;; user-group records.

(define-module (gnu system shadow)
  #:use-module (gnu services)
  #:use-module (gnu system accounts)
  #:re-export (user-group
               user-group?
               user-group-name
               user-group-system?
               user-account
               user-account?)
  #:export (account-service-type))

(define account-service-type
  (service-type (name 'account)
                (extensions '())
                (compose (lambda (l) (apply append l)))
                (extend append)
                (default-value '())
                (description "Create user accounts and groups.")))
