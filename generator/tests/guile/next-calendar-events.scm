;;; Shepherd's own next-calendar-event, for generator/tests/oracle_guix.rs.
;;;
;;;   guile --no-auto-compile next-calendar-events.scm TIMER.SCM EVENTS BASES K
;;;
;;; TIMER.SCM is Shepherd's shepherd/service/timer.scm, read in place (from
;;; ../shared/oracles/guix/shepherd): its module needs Fibers, which the
;;; oracle rootfs does not have, so its top-level definitions are evaluated
;;; one by one in a module of their own; the few that need Fibers (none of
;;; the calendar code) are left out.  EVENTS holds `(ID (calendar-event ...))'
;;; forms; BASES `(YEAR MONTH DAY HOUR MINUTE SECOND)' lists (UTC).  For each event and
;;; base, prints `ID<TAB>BASE<TAB>WHEN' for the K events that follow (BASE
;;; and WHEN as YYYY-MM-DD HH:MM:SS), each
;;; as the instant Shepherd's timer would wait for (`date->time-utc' of what
;;; next-calendar-event returns, as `seconds-to-wait' does), in UTC.

(use-modules (ice-9 match) (srfi srfi-19))

(match (command-line)
  ((_ timer-file events-file bases-file k)
   (define m (make-fresh-user-module))
   (eval '(use-modules (srfi srfi-1) (srfi srfi-9) (srfi srfi-9 gnu)
                       (srfi srfi-19) (srfi srfi-26) (srfi srfi-34)
                       (srfi srfi-35) (srfi srfi-71) (ice-9 match)
                       (ice-9 vlist))
         m)
   (call-with-input-file timer-file
     (lambda (port)
       (let loop ()
         (let ((form (read port)))
           (unless (eof-object? form)
             (match form
               (('define-module . _) #t)
               (_ (false-if-exception (eval form m))))
             (loop))))))
   (define next-calendar-event (eval 'next-calendar-event m))
   (define (read-all file)
     (call-with-input-file file
       (lambda (port)
         (let loop ((acc '()))
           (let ((x (read port)))
             (if (eof-object? x) (reverse acc) (loop (cons x acc))))))))
   (define bases (read-all bases-file))
   (define count (string->number k))
   (define (utc date)
     (time-utc->date (date->time-utc date) 0))
   (for-each
    (match-lambda
      ((id event-form)
       (let ((event (eval event-form m)))
         (for-each
          (lambda (base)
            (define start
              (match base
                ((y mo d h mi s) (make-date 0 s mi h d mo y 0))))
            (define (show date) (date->string date "~Y-~m-~d ~H:~M:~S"))
            (let loop ((date start) (n 0))
              (when (< n count)
                (let ((next (utc (next-calendar-event event date))))
                  (format #t "~a\t~a\t~a~%" id (show start) (show next))
                  (loop next (+ n 1))))))
          bases))))
    (read-all events-file))))
