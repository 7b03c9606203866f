;;; Stand-in for (gnu packages base), used only by windlass's tests: the
;;; one procedure the generated module takes from it,
;;; `libc-utf8-locales-for-target' (Guix's package of UTF-8 locales,
;;; C.UTF-8 among them), as a file-like object named after the package.

(define-module (gnu packages base)
  #:use-module (guix gexp)
  #:export (libc-utf8-locales-for-target))

(define* (libc-utf8-locales-for-target #:optional target)
  (plain-file "glibc-utf8-locales" ""))
