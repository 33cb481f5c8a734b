"""Intake's read models: the ``cases`` table (``schema``), how events fold into it
(``projections``) and what the API reads from it (``queries``)."""
