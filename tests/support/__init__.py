"""What every test suite shares: factories.py makes the data, waiting.py waits, rows.py reads
the database, psp.py drives and reads the emulator directly, api.py and pages.py call the
API and the dashboard, concurrency.py races calls on purpose, delivery.py runs the
notification worker's cycles, and receiver.py, live_server.py and browser.py are the real
HTTP servers and Chromium the tests talk to. tests/conftest.py binds them as fixtures."""
