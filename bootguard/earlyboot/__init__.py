"""The early-boot step (`bootguard initrd`), one module per step, run in this order by `step.run`:

observe  what the loader, the watchdog's bootstatus, pstore and the state say about this boot and
         the ones before it (observe.py);
decide   a pure function of the observation: how the earlier boots ended and why (causes.py decides
         every cause, in one place), what this boot is, what the trial policy asks for
         (decide.py, decide_trial.py);
record   one state update and the events, or a spool file when the state directory is read-only
         (record.py); then the decided actions are carried out (act.py);
arm      the hardware watchdog, whatever happened before (arm.py).

Standard library only; every import here is on the early-boot budget (tests/unit/test_imports.py).
"""
