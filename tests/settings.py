"""Settings for the test suite: production settings with a test key and no TLS redirect.

The same module serves the qcluster and ticker processes that crash tests start.
"""

import os

os.environ.setdefault("DEBUG", "0")  # tests run as production does, on either database
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("SESSION_COOKIE_SECURE", "0")
os.environ.setdefault("CSRF_COOKIE_SECURE", "0")

from config.settings import *  # noqa: E402,F403
from config.settings import BRAID, DATABASES, INSTALLED_APPS  # noqa: E402

# Drill functions (tests/drills.py) for this process and every worker, ticker and
# pool process the tests start.
INSTALLED_APPS = [*INSTALLED_APPS, "tests.drills.DrillsConfig"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
BRAID["LEASE_S"] = float(os.environ.get("BRAID_LEASE_S", "3"))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file (not :memory:) so worker threads and processes share the test database.
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get(
        "BRAID_SQLITE_TEST_PATH", str(BASE_DIR / "var" / "test.sqlite3"))}  # noqa: F405
