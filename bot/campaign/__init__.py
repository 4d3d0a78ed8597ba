"""The campaign: the calendar (`plan`, pure), what the clock's jobs do (`jobs`), the clock
itself (`scheduler`, APScheduler) and the dry run behind `svarbot plan`."""
