"""tunebench.results: what a study keeps: the SQLite store, the tables (csv/json/summary), statistics over seeds."""
