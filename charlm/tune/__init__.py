"""Searches over training runs (Optuna): a study is many training runs, each an ordinary
charlm run with its own folders, scored by its val loss on the whole val split.

:mod:`.space` declares what a trial draws, :mod:`.defaults` the default space and
:mod:`.section` the ``tune:`` section of config files; :mod:`.plan` is what a study is
(its base config, trial time, space); :mod:`.storage` opens a study's database and recovers
the trials of dead workers; :mod:`.trial` runs one trial; :mod:`.search` runs many, with
progress and a clean stop; :mod:`.results` reads a study back (table, JSON, best config).
Optuna is imported only here (``pip install 'charlm[tune]'``).
"""
