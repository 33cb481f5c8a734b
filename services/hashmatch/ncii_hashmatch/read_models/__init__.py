"""Hashmatch's read models: the bank's tables (``schema``), how events fold into them
(``projections``) and what the matcher, the application and the routes read (``queries``)."""
