"""Files on disk: writes that are all or nothing (atomic), the folders a command writes with their
markers and locks (folders), and run directories written and read in one place (rundir)."""
