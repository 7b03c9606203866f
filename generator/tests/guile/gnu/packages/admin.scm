;;; Stand-in for (gnu packages admin), used only by windlass's tests: the
;;; one package the windlass modules take from it, `shadow' (whose
;;; sbin/nologin Guix services give their system users), as a file-like
;;; object named after it, as the tests' other packages are.

(define-module (gnu packages admin)
  #:use-module (guix gexp)
  #:export (shadow))

(define shadow (plain-file "shadow" ""))
