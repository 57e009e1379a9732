"""Pure ask/tell learners (no Ray, no files, no clocks): the per-seed threshold search, the adaptive rank and
dimension learners with their statistics and replay, and the expansion that grows a sweep's searches."""
