;;; Compiles the real Guix module closure (../shared/oracles/guix) to .go
;;; files, so that a check loads it in seconds instead of interpreting it
;;; for minutes.  Run by tools/guix-go.sh inside the oracle rootfs:
;;;
;;;   guile --no-auto-compile compile.scm GUIX OUT K N
;;;
;;; GUIX holds modules.txt, src/ and stubs/ (`stub' in modules.txt); OUT
;;; receives the .go tree.
;;; This process compiles every Nth module of modules.txt starting at the
;;; Kth; N processes run side by side.  modules.txt lists dependencies
;;; before their users, so a module's imports are mostly compiled already
;;; and load from OUT; one that is not yet is read from source (slower, not
;;; wrong).  Every module is compiled at -O1, Guile's baseline compiler,
;;; which Guix itself uses for its package modules: these files are only
;;; loaded to be checked, never run for long.  compile-file writes each
;;; .go atomically, so a process never loads another's half-written file.
;;;
;;; A few modules' macros call the module's own procedures while expanding
;;; (Guile bug 15602): compiling such a module fails until the module
;;; itself is loaded.  Guix's own driver loads every module from source
;;; first, which costs minutes; here only a module whose compilation fails
;;; is loaded from source, then compiled again.
(use-modules (system base compile)
             (system base optimize)
             (ice-9 rdelim)
             (ice-9 match))

(define (clear keywords opts)
  ;; As (guix build compile): no cross-module inlining, no free-variable
  ;; resolution, which make builds slower and depend on the order.
  (let loop ((opts opts) (out '()))
    (match opts
      (() (reverse out))
      ((kw v . rest)
       (loop rest (cons* (if (memq kw keywords) #f v) kw out))))))

(define (read-lines file)
  (call-with-input-file file
    (lambda (port)
      (let loop ((acc '()))
        (let ((line (read-line port)))
          (cond ((eof-object? line) (reverse acc))
                ((string-null? line) (loop acc))
                (else (loop (cons line acc)))))))))

(match (command-line)
  ((_ guix out k n)
   (let ((k (string->number k))
         (n (string->number n))
         (opts (clear '(#:inlinable-exports? #:resolve-free-vars?
                        #:cross-module-inlining?)
                      (append (optimizations-for-level 1)
                              (list #:warnings (list))))))
     (set! %load-path (cons* (string-append guix "/stubs")
                             (string-append guix "/src")
                             %load-path))
     (set! %load-compiled-path (cons out %load-compiled-path))
     (let loop ((entries (read-lines (string-append guix "/modules.txt")))
                (i 0))
       (match entries
         (() #t)
         ((entry . rest)
          (when (= (modulo i n) k)
            (match (string-split entry #\space)
              ((where file)
               (let ((dir (if (string=? where "stub") "stubs" where))
                     (go (string-append out "/" (string-drop-right file 4)
                                        ".go")))
                 (define (compile)
                   (compile-file (string-append guix "/" dir "/" file)
                                 #:output-file go
                                 #:opts opts))
                 (unless (file-exists? go)
                   (catch #t
                     compile
                     (lambda _
                       ;; The failed expansion left the module registered
                       ;; but empty: evaluate its source into it.
                       (save-module-excursion
                        (lambda ()
                          (primitive-load
                           (string-append guix "/" dir "/" file))))
                       (compile)))
                   ;; Compiling registered the module without its
                   ;; definitions; a later import would find it so.
                   (save-module-excursion
                    (lambda () (load-compiled go))))))))
          (loop rest (+ i 1))))))))
