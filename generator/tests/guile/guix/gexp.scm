;;; Stand-in for (guix gexp), used only by windlass's tests.
;;;
;;; It installs the same reader syntax as Guix (#~, #$, #$@, #+, #+@) and
;;; turns a G-expression into a record holding its S-expression, with the
;;; ungexp'd parts evaluated, so tests can inspect what a service would run.
;;; File-like objects are records naming how they were made.

(define-module (guix gexp)
  #:use-module (srfi srfi-9)
  #:export (gexp
            gexp?
            gexp->sexp
            ungexp
            ungexp-splicing
            ungexp-native
            ungexp-native-splicing
            file-like?
            file-like-kind
            file-like-arguments
            plain-file
            local-file
            file-append
            computed-file
            program-file))

(define-record-type <gexp>
  (%make-gexp sexp)
  gexp?
  (sexp gexp->sexp))

(define (make-gexp sexp)
  ;; As in Guix, a G-expression ungexp'd into another one is inlined.
  (define (inline x)
    (cond ((gexp? x) (gexp->sexp x))
          ((pair? x) (cons (inline (car x)) (inline (cdr x))))
          (else x)))
  (%make-gexp (inline sexp)))

(define-record-type <file-like>
  (make-file-like kind arguments)
  file-like?
  (kind file-like-kind)
  (arguments file-like-arguments))

(define-syntax-rule (define-ungexp name)
  (define-syntax name
    (lambda (s)
      (syntax-violation 'name "used outside of a G-expression" s))))

(define-ungexp ungexp)
(define-ungexp ungexp-splicing)
(define-ungexp ungexp-native)
(define-ungexp ungexp-native-splicing)

(define-syntax gexp
  (lambda (s)
    (define (convert x)
      (syntax-case x (ungexp ungexp-splicing ungexp-native ungexp-native-splicing)
        ((ungexp e) #'(unquote e))
        ((ungexp-splicing e) #'(unquote-splicing e))
        ((ungexp-native e) #'(unquote e))
        ((ungexp-native-splicing e) #'(unquote-splicing e))
        ((a . b) (with-syntax ((ca (convert #'a)) (cb (convert #'b)))
                   #'(ca . cb)))
        (other #'other)))
    (syntax-case s ()
      ((_ e) (with-syntax ((body (convert #'e)))
               #'(make-gexp (quasiquote body)))))))

(read-hash-extend #\~ (lambda (chr port) (list 'gexp (read port))))
(read-hash-extend #\$ (lambda (chr port)
                        (if (eqv? (peek-char port) #\@)
                            (begin (read-char port)
                                   (list 'ungexp-splicing (read port)))
                            (list 'ungexp (read port)))))
(read-hash-extend #\+ (lambda (chr port)
                        (if (eqv? (peek-char port) #\@)
                            (begin (read-char port)
                                   (list 'ungexp-native-splicing (read port)))
                            (list 'ungexp-native (read port)))))

(define (plain-file name content)
  (unless (and (string? name) (string? content))
    (error "plain-file: expected a name and a content string" name content))
  (make-file-like 'plain-file (list name content)))

(define* (local-file file #:optional name #:key recursive? select?)
  (unless (string? file)
    (error "local-file: expected a file name" file))
  (make-file-like 'local-file (list file name recursive?)))

(define (file-append base . suffixes)
  (unless (and (file-like? base) (and-map string? suffixes))
    (error "file-append: expected a file-like object and strings" base suffixes))
  (make-file-like 'file-append (cons base suffixes)))

(define* (computed-file name gexp #:key options local-build?)
  (make-file-like 'computed-file (list name gexp)))

(define* (program-file name gexp #:key guile module-path)
  (make-file-like 'program-file (list name gexp)))
