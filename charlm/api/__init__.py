"""The Python API, a thin face over the stages: :func:`charlm.load` (:mod:`.model`) and
:func:`charlm.train` (:mod:`.train`). docs/api.md shows them."""
