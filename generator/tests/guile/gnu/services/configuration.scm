;;; Stand-in for (gnu services configuration), used only by windlass's tests.
;;;
;;; define-configuration and define-configuration/no-serialization take
;;; Guix's field clauses, (FIELD (TYPE DEFAULT) DOC) or (FIELD (TYPE) DOC)
;;; for a field without a default, optionally followed by (sanitizer PROC);
;;; DOC must be a string.  The value of a field must satisfy TYPE?, looked
;;; up where the configuration is defined, as in Guix.  The constructor
;;; accepts exactly the declared fields, in Guix's record syntax.  Like
;;; Guix's, the module exports the predicates list-of, list-of-strings?
;;; and list-of-symbols?.

(define-module (gnu services configuration)
  #:use-module (stub records)
  #:re-export (list-of
               list-of-strings?
               list-of-symbols?)
  #:export (define-configuration
            define-configuration/no-serialization))

(define-syntax define-configuration/no-serialization
  (lambda (s)
    (define (predicate-for stem type)
      (datum->syntax stem (symbol-append (syntax->datum type) '?)))
    (define (spec stem clause)
      (syntax-case clause (sanitizer)
        ((field (type default) doc rest ...)
         (begin
           (check-clause clause #'doc #'(rest ...))
           (with-syntax ((pred (predicate-for stem #'type)))
             #'(list 'field pred (lambda () default)))))
        ((field (type) doc rest ...)
         (begin
           (check-clause clause #'doc #'(rest ...))
           (with-syntax ((pred (predicate-for stem #'type)))
             #'(list 'field pred 'required))))
        (_ (syntax-violation 'define-configuration "invalid field clause"
                             clause))))
    (define (check-clause clause doc rest)
      (unless (string? (syntax->datum doc))
        (syntax-violation 'define-configuration
                          "a field's documentation must be a string" clause))
      (for-each (lambda (r)
                  (syntax-case r (sanitizer)
                    ((sanitizer proc) #t)
                    (_ (syntax-violation 'define-configuration
                                         "unexpected field property" clause r))))
                rest))
    (define (accessor stem field)
      (datum->syntax stem (symbol-append (syntax->datum stem) '-
                                         (syntax->datum field))))
    (syntax-case s ()
      ((_ stem clause ...)
       (with-syntax (((spec-expr ...) (map (lambda (c) (spec #'stem c))
                                           #'(clause ...)))
                     ((field ...) (map (lambda (c)
                                         (syntax-case c () ((f . _) #'f)))
                                       #'(clause ...)))
                     (predicate (datum->syntax
                                 #'stem (symbol-append (syntax->datum #'stem) '?)))
                     (fields (datum->syntax
                              #'stem (symbol-append (syntax->datum #'stem)
                                                    '-fields))))
         (with-syntax (((get ...) (map (lambda (f) (accessor #'stem f))
                                       #'(field ...))))
           #'(begin
               (define-syntax stem
                 (syntax-rules ()
                   ((_ (f v) (... ...))
                    (make-stub 'stem (list spec-expr ...)
                               (list (cons 'f v) (... ...))))))
               (define (predicate x)
                 (and (stub? x) (eq? (stub-type x) 'stem)))
               (define fields '(field ...))
               (define (get config) (stub-ref config 'field))
               ...)))))))

(define-syntax define-configuration
  (syntax-rules (no-serialization)
    ((_ stem clause ... (no-serialization))
     (define-configuration/no-serialization stem clause ...))))
