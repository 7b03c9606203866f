;;; Stand-in records for the Guix API, used only by windlass's tests.
;;;
;;; A stand-in record constructor accepts exactly the fields listed for it
;;; (the fields Guix documents for the real record), in Guix's
;;; `(record (field value) ...)' syntax.  An unknown or misspelt field, a
;;; field given twice, a missing required field or a value its predicate
;;; refuses raises an error as soon as the constructor runs, so a file that
;;; uses one fails to load.

(define-module (stub records)
  #:use-module (srfi srfi-9)
  #:use-module (ice-9 match)
  #:export (define-stub-record
            stub-default
            make-stub
            stub?
            stub-type
            stub-fields
            stub-ref
            stub-set?
            %unset

            list-of
            string-or-pair?
            list-of-symbols?
            list-of-strings?))

(define-record-type <stub>
  (%make-stub type fields)
  stub?
  (type stub-type)                      ;symbol: the record type's name
  (fields stub-fields))                 ;alist, in declaration order

;; The value of a "maybe" field that was not given (Guix's %unset-value).
(define %unset (list 'unset))

(define (stub-set? value)
  (not (eq? value %unset)))

(define (stub-ref record field)
  (match (assq field (stub-fields record))
    ((_ . value) value)
    (#f (error (format #f "~a has no field `~a'" (stub-type record) field)))))

(define (make-stub type spec given)
  "Build a TYPE record from GIVEN, an alist of the (field . value) pairs
written by the caller.  SPEC lists (field predicate default) where default is
'required or a thunk."
  (let loop ((rest given) (seen '()))
    (match rest
      (() #t)
      (((field . _) . tail)
       (unless (assq field spec)
         (error (format #f "~a: unknown field `~a' (the documented fields are ~a)"
                        type field (map car spec))))
       (when (memq field seen)
         (error (format #f "~a: field `~a' given twice" type field)))
       (loop tail (cons field seen)))))
  (%make-stub
   type
   (map (match-lambda
          ((field predicate default)
           (let ((value (match (assq field given)
                          ((_ . value) value)
                          (#f (if (eq? default 'required)
                                  (error (format #f "~a: missing required field `~a'"
                                                 type field))
                                  (default))))))
             (unless (or (eq? value %unset) (predicate value))
               (error (format #f "~a: invalid value for field `~a': ~s"
                              type field value)))
             (cons field value))))
        spec)))

(define-syntax stub-default
  (syntax-rules ()
    ((_) 'required)
    ((_ expr) (lambda () expr))))

(define-syntax define-stub-record
  (syntax-rules ()
    "Define NAME as a record constructor in Guix's syntax.  Each spec is
(FIELD PREDICATE) for a required field or (FIELD PREDICATE DEFAULT)."
    ((_ name (field predicate . default) ...)
     (define-syntax name
       (syntax-rules ()
         ((_ (f v) (... ...))
          (make-stub 'name
                     (list (list 'field predicate (stub-default . default)) ...)
                     (list (cons 'f v) (... ...)))))))))

(define (list-of pred)
  (lambda (x)
    (and (list? x) (let loop ((x x))
                     (or (null? x) (and (pred (car x)) (loop (cdr x))))))))

(define list-of-symbols? (list-of symbol?))
(define list-of-strings? (list-of string?))

(define (string-or-pair? x)
  (or (string? x)
      (and (pair? x) (string? (car x)) (string? (cdr x)))))
