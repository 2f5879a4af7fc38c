"""tunebench.study:
running a study: plan (configurations, run ids), one run (execute, attempt, its record), the driver, backends, search, lock.
"""
