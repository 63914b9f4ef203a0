"""The rehearsal: the flagship ``entitynet`` configuration run end to end in miniature against local endpoints
(``python tests/rehearsal/run.py`` or ``make rehearsal``). See README, "Rehearsal"."""
