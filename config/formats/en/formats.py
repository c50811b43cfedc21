# Operators compare timestamps of runs that take milliseconds: ISO-like, to the second.
DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s"
