;;; Output for windlass's Rust tests: one line per fact,
;;;   KIND NAME FIELD CODEPOINT...
;;; where KIND, NAME and FIELD are plain words and the value is a string
;;; written as its Unicode code points in decimal, so that no quoting or
;;; locale can alter it on the way back.

(define-module (stub dump)
  #:use-module (guix gexp)
  #:export (emit
            value->string
            run-gexp))

(define (value->string v)
  (cond ((string? v) v)
        ((symbol? v) (symbol->string v))
        ((number? v) (number->string v))
        ((eq? v #t) "#t")
        ((eq? v #f) "#f")
        ((file-like? v)
         (case (file-like-kind v)
           ((file-append)
            (apply string-append
                   (value->string (car (file-like-arguments v)))
                   (cdr (file-like-arguments v))))
           ((plain-file) (string-append "<plain-file "
                                        (car (file-like-arguments v)) ">"))
           ((local-file) (string-append "<local-file "
                                        (car (file-like-arguments v)) ">"))
           (else (format #f "<~a>" (file-like-kind v)))))
        (else (call-with-output-string (lambda (p) (write v p))))))

(define (emit kind name field value)
  (display kind)
  (display " ")
  (display (value->string name))
  (display " ")
  (display field)
  (for-each (lambda (c) (display " ") (display (char->integer c)))
            (string->list (value->string value)))
  (newline))

(define (run-gexp g)
  "Evaluate the body of G-expression G as Shepherd would, against the
stand-in Shepherd procedures."
  (define (lower x)
    ;; File-like objects become the file names Guix would substitute.
    (cond ((file-like? x) (value->string x))
          ((pair? x) (cons (lower (car x)) (lower (cdr x))))
          (else x)))
  (unless (gexp? g)
    (error "not a G-expression" g))
  (eval (lower (gexp->sexp g)) (resolve-module '(shepherd service timer))))
