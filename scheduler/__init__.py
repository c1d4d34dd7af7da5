"""The scheduler (DESIGN §8): SLA timers and nudges, daily focus lists, the weekly audit digest,
the learning jobs and CRM sync on APScheduler 3, run by one elected replica at a time.

:mod:`scheduler.service` (election and APScheduler), :mod:`scheduler.jobs` (what runs when),
:mod:`scheduler.sla_scan`, :mod:`scheduler.focus`, :mod:`scheduler.digest`,
:mod:`scheduler.learning_jobs`; composed from settings in :mod:`loopgate.scheduling`.
"""
