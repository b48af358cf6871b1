# The two commands a newcomer needs: `make run` and `make test`. Both install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
STAMP  := $(VENV)/.installed

.PHONY: run test install lint format schemas bench clean backup restore

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Serve the product: embedded mode by default; services mode when DATABASE_URL and REDIS_URL are set.
run: install
	$(BIN)/python -m cmsproject.run --host $(HOST) --port $(PORT)

## Run the whole test suite (services mode too when DATABASE_URL and REDIS_URL are set).
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Regenerate the committed API contracts (OpenAPI and GraphQL SDL) after an intended change.
schemas: install
	$(BIN)/python -m cmsproject.contracts --write

## The floor benchmark: bare Django and DRF views as each mode serves HTTP (needs wrk).
bench: install
	@command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python bench/floor.py

## Back up the database and the media into one archive: $(BACKUP_DIR)cms-<UTC time>.tar.gz.
BACKUP_DIR ?= backups/
backup: install
	$(BIN)/python -m cmsproject.backup dump --dir $(BACKUP_DIR)

## Restore an archive into an empty database (TARGET_DATABASE_URL, else DATABASE_URL or the
## embedded SQLite file) and MEDIA_ROOT; FORCE=1 replaces a non-empty one. The tool reads the URL
## from the environment: set it before `make` when it holds a password, not as a make argument.
restore: install
	@test -n "$(ARCHIVE)" || { echo "usage: [TARGET_DATABASE_URL=...] make restore ARCHIVE=backups/cms-<time>.tar.gz [FORCE=1]"; exit 2; }
	$(BIN)/python -m cmsproject.backup restore $(ARCHIVE) $(if $(FORCE),--force)

clean:
	rm -rf $(VENV) staticfiles .pytest-db.sqlite3*
