"""The audit service: auditors replay any case from the log, verified, as of any time."""
