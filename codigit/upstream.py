"""Every place where codigit relies on a library's internals: one list, each entry with the test that fails if it
stops applying.

Policy (STYLE 16: edits of upstream code are few, named and loud):
- argilla-server has no public Python API, and the embedded server needs more of it than any other library: its
  settings, its app, routes, models, queues and bundled UI. rq, uvicorn, the argilla SDK, TRL and transformers are
  reached into in a few places (a private attribute, a method overridden, private trainer state kept in step).
- Each such use is listed in HOOKS below: the package, the internal's dotted name, what codigit does with it and
  why, where (codigit module:function) and the tests that fail when it stops applying. A `# private: listed in
  codigit/upstream.py` comment beside the code points back here.
- The packages patched are pinned with `==` in pyproject.toml to the versions these tests ran on (PINNED); moving a
  pin means running the listed tests on the new version first.
- tests/test_upstream.py checks that every listed internal still exists in the installed packages, that codigit's
  replacements are the ones in place in a built app, that every named test exists, that the pins match what is
  installed, and scans codigit/ so that a new hook cannot be added without being listed here.
- Prefer data to code (a translation table over a code edit), and a public API when one appears.

This module imports nothing from the libraries it lists: the names are strings.
"""

from __future__ import annotations

from dataclasses import dataclass

# Packages whose internals codigit patches or reads, pinned with == in pyproject.toml.
PINNED = ("argilla", "argilla-server", "rq", "uvicorn", "trl", "transformers")
# Packages that appear in HOOKS without an exact pin, and why that is enough.
NOT_PINNED = {
    "fakeredis": "its public API only (FakeStrictRedis), in a range",
    "starlette": "fixed within a minor series by argilla-server 2.8.0's own fastapi~=0.115.0 pin",
}

# argilla-server's tables and columns that codigit reads or indexes with raw SQL (not through its ORM models):
# collect's snapshot query, the FTS5 triggers and query indexes (sqlindex), the per-dataset bm25 (sqltext) and
# backup's check that a file is an Argilla database. tests/test_upstream.py checks each against the installed models.
RAW_SQL = {
    "records": ("id", "dataset_id", "external_id", "fields", "status", "inserted_at"),
    "datasets": ("id", "name", "workspace_id"),
    "workspaces": ("id", "name"),
    "responses": ("record_id", "user_id", "status", "values", "updated_at"),
    "users": ("id", "username", "role"),
    "fields": ("dataset_id", "name", "settings"),
}


@dataclass(frozen=True)
class Hook:
    package: str  # the distribution, as pyproject.toml names it
    internal: str  # importable dotted name: module, then attributes (an instance attribute of a class counts)
    use: str  # what codigit does with it, and why
    where: tuple[str, ...]  # codigit module:function
    tests: tuple[str, ...]  # pytest node ids that fail when it stops applying


_SERVER = "tests/test_server.py::"
_PRIVACY = "tests/test_privacy.py::"
_HARD = "tests/test_hardening_server.py::"
_HOME = "tests/test_study_home.py::"
_SEARCH = "tests/test_search_engine.py::"
_INDEX = "tests/test_search_index.py::"
_TRAIN = "tests/test_train.py::"
_UP = "tests/test_upstream.py::"
_EXISTS = _UP + "test_every_internal_still_exists"
_IN_PLACE = _UP + "test_codigit_hooks_are_the_ones_in_place"
_RESTART = _SERVER + "test_restart_keeps_everything"
_JOB = _SERVER + "test_distribution_change_runs_the_status_job_in_process"
_REFUSED = _HOME + "test_a_story_collect_would_drop_is_refused_with_the_rule_and_nothing_is_stored"
_PROGRESS = _HARD + "test_annotators_get_no_progress_figures_about_other_people"
_READ_GAP = _PRIVACY + "test_participant_cannot_read_another_participants_story"
_QUIET_422 = _HARD + "test_bad_search_bodies_are_422_without_a_traceback"
_HOME_STEPS = _HOME + "test_each_step_of_the_home_follows_what_the_participant_does"


def _settings(field: str, use: str, tests: tuple[str, ...]) -> Hook:
    return Hook(
        "argilla-server", f"argilla_server.settings.Settings.{field}", use, ("codigit.server.app:configure",), tests
    )


HOOKS: tuple[Hook, ...] = (
    # -- argilla-server: settings, read from ARGILLA_* variables once, when argilla_server is first imported ----------
    _settings("home_path", "ARGILLA_HOME_PATH: the codigit home, set before the first import", (_RESTART,)),
    _settings("database_url", "ARGILLA_DATABASE_URL: the home's SQLite, or --database-url", (_RESTART,)),
    _settings("search_engine", "ARGILLA_SEARCH_ENGINE=codigit-sql: the engine search.py registers", (_RESTART,)),
    _settings(
        "database_sqlite_timeout",
        "ARGILLA_DATABASE_SQLITE_TIMEOUT=60: a writer queued behind a bulk upload waits instead of failing",
        (_SERVER + "test_concurrent_submissions_all_land",),
    ),
    _settings(
        "redis_url",
        "ARGILLA_REDIS_URL: a dead address the in-process queue never dials, or the real --redis-url",
        (_JOB, _SERVER + "test_redis_url_uses_a_real_redis_and_an_rq_worker"),
    ),
    _settings(
        "enable_telemetry", "its validator reads HF_HUB_DISABLE_TELEMETRY=1: nothing leaves the machine", (_IN_PLACE,)
    ),
    Hook(
        "argilla-server",
        "argilla_server.settings.settings.database_engine_args",
        "the search engine's own read pool copies the engine arguments (timeout, PostgreSQL pool) of the server's",
        ("codigit.server.search:_read_engine",),
        (_SERVER + "test_concurrent_submissions_all_land",),
    ),
    # -- argilla-server: database, accounts ----------------------------------------------------------------------
    Hook(
        "argilla-server",
        "argilla_server.alembic",
        "prepare_database runs argilla-server's own migrations from its package folder (no alembic.ini: our logging)",
        ("codigit.server.app:prepare_database",),
        (_RESTART,),
    ),
    Hook(
        "argilla-server",
        "argilla_server.database.sync_engine",
        "adds codigit's FTS5 tables, triggers and query indexes beside the migrated schema; disposed at exit",
        ("codigit.server.app:prepare_database", "codigit.server.serve:serve"),
        (_INDEX + "test_trigger_index_equals_a_rebuild", _RESTART),
    ),
    Hook(
        "argilla-server",
        "argilla_server.database.SyncSessionLocal",
        "ensure_owner creates or repairs the owner account directly (argilla-server's typer CLI fails on click 8.2)",
        ("codigit.server.app:ensure_owner",),
        (_RESTART,),
    ),
    Hook(
        "argilla-server",
        "argilla_server.contexts.accounts.hash_password",
        "the owner's generated password stored as argilla-server hashes it",
        ("codigit.server.app:ensure_owner",),
        (_RESTART,),
    ),
    Hook(
        "argilla-server",
        "argilla_server.contexts.accounts.verify_password",
        "credentials kept only while they still open the owner account",
        ("codigit.server.app:ensure_owner",),
        (_RESTART,),
    ),
    Hook(
        "argilla-server",
        "argilla_server.database.async_engine",
        "SQLite only: its connect/begin events give writing requests BEGIN IMMEDIATE; admission sized to its pool",
        ("codigit.server.app:create_app", "codigit.server.sqlite_writes:install"),
        (
            _SERVER + "test_concurrent_submissions_all_land",
            "tests/test_faults.py::test_sigkill_mid_load_loses_no_acknowledged_submission",
        ),
    ),
    Hook(
        "argilla-server",
        "argilla_server.database.get_async_db",
        "the request's database session for codigit's replacement routes and the study home's routes",
        ("codigit.server.privacy:install", "codigit.server.study_pages:install"),
        (_READ_GAP, _HOME_STEPS),
    ),
    Hook(
        "argilla-server",
        "argilla_server.security.auth.get_current_user",
        "argilla-server's own sign-in guards codigit's routes (a participant signed in to the UI is signed in there)",
        ("codigit.server.privacy:install", "codigit.server.study_pages:install"),
        (_READ_GAP, _HOME_STEPS),
    ),
    Hook(
        "argilla-server",
        "argilla_server.models",
        "ORM models of its tables (Record, Response, Dataset, Workspace, User, …) read directly: search, rules, home",
        (
            "codigit.server.app:ensure_owner",
            "codigit.server.search:SQLSearchEngine",
            "codigit.server.sqlfilters:FilterSQL",
            "codigit.server.submit_rules:check",
            "codigit.server.home_state:home_state",
            "codigit.server.privacy:install",
        ),
        (_SEARCH + "test_filters", _HOME_STEPS, _REFUSED),
    ),
    Hook(
        "argilla-server",
        "argilla_server.models.base.DatabaseModel.metadata",
        "raw SQL on the tables and columns in RAW_SQL: collect's one-statement snapshot, FTS triggers, backup check",
        (
            "codigit.collect:read_rows",
            "codigit.server.sqlindex:install",
            "codigit.server.sqltext:fts5_ranked_sql",
            "codigit.backup:_check",
        ),
        (
            "tests/test_workflow.py::test_snapshot_honours_consent_withdrawal_and_validity",
            _INDEX + "test_trigger_index_equals_a_rebuild",
            _EXISTS,
        ),
    ),
    Hook(
        "argilla-server",
        "argilla_server.enums",
        "its enums (statuses, roles, metadata types, sort orders) give the values the SQL compares with",
        (
            "codigit.server.search:SQLSearchEngine",
            "codigit.server.sqlfilters:FilterSQL",
            "codigit.server.app:ensure_owner",
        ),
        (_SEARCH + "test_filters", _SEARCH + "test_sort"),
    ),
    # -- argilla-server: search engine registry ------------------------------------------------------------------
    Hook(
        "argilla-server",
        "argilla_server.search_engine.base.SearchEngine.register",
        "registers SQLSearchEngine as `codigit-sql` (no Elasticsearch): its registry of engines",
        ("codigit.server.search:SQLSearchEngine",),
        (_INDEX + "test_engine_implements_every_abstract_method", _SEARCH + "test_text_search"),
    ),
    Hook(
        "argilla-server",
        "argilla_server.search_engine.base",
        "the engine interface: its abstract methods and the filter, scope, order and response classes it passes",
        ("codigit.server.search:SQLSearchEngine", "codigit.server.sqlfilters:FilterSQL"),
        (_INDEX + "test_engine_implements_every_abstract_method", _SEARCH + "test_filters"),
    ),
    Hook(
        "argilla-server",
        "argilla_server.search_engine.get_search_engine",
        "the engine dependency of the replaced dataset progress route",
        ("codigit.server.privacy:_install_progress",),
        (_PROGRESS,),
    ),
    Hook(
        "argilla-server",
        "argilla_server.search_engine.SearchEngine",
        "the type of that dependency",
        ("codigit.server.privacy:_install_progress",),
        (_PROGRESS,),
    ),
    # -- argilla-server: the app, its routes and errors ---------------------------------------------------------
    Hook(
        "argilla-server",
        "argilla_server._app.app",
        "the app, built when argilla_server is imported (a private module); create_app edits that one instance",
        ("codigit.server.app:create_app",),
        ("tests/test_cli.py::test_server_app_does_not_import_the_ml_stack", _IN_PLACE),
    ),
    Hook(
        "argilla-server",
        "argilla_server._app.configure_app_statics",
        "its per-start UI copy (<tempdir>/<mkdtemp>/statics, route `static`): found to edit, deleted at shutdown",
        ("codigit.server.app:ui_directory", "codigit.server.app:remove_ui_copy"),
        (_PRIVACY + "test_ui_does_not_make_participants_browsers_contact_google", _IN_PLACE),
    ),
    Hook(
        "argilla-server",
        "argilla_server._app.configure_api_docs",
        "its /docs and /api redirects to the API docs (Swagger/ReDoc from a CDN) are removed from the app's routes",
        ("codigit.server.app:close_docs",),
        (_HARD + "test_no_page_loads_scripts_from_a_third_party", _IN_PLACE),
    ),
    Hook(
        "argilla-server",
        "argilla_server.api.routes.api_v1.router.routes",
        "the API's route list edited in place: docs pages removed, three GET routes swapped at the same position",
        (
            "codigit.server.app:close_docs",
            "codigit.server.app:docs_pages",
            "codigit.server.privacy:_replace_get",
            "codigit.server.privacy:scoped_routes",
            "codigit.server.serve:privacy_report",
        ),
        (_HARD + "test_a_home_made_with_open_modes_is_private_after_start", _READ_GAP, _IN_PLACE),
    ),
    Hook(
        "argilla-server",
        "argilla_server.api.handlers.v1.records.get_record",
        "GET /records/{record_id} replaced: annotators get their own response and visible metadata only (read gap)",
        ("codigit.server.privacy:install",),
        (_READ_GAP, _PRIVACY + "test_hidden_metadata_stays_hidden", _IN_PLACE),
    ),
    Hook(
        "argilla-server",
        "argilla_server.api.handlers.v1.datasets.datasets.get_dataset_progress",
        "GET /datasets/{id}/progress replaced: annotators see only themselves among the users",
        ("codigit.server.privacy:_install_progress",),
        (_PROGRESS, _IN_PLACE),
    ),
    Hook(
        "argilla-server",
        "argilla_server.api.handlers.v1.datasets.datasets.get_dataset_users_progress",
        "GET /datasets/{id}/users/progress replaced: annotators get their own counts only",
        ("codigit.server.privacy:_install_progress",),
        (_PROGRESS, _IN_PLACE),
    ),
    Hook(
        "argilla-server",
        "argilla_server.api.handlers.v1.datasets.records._filter_record_metadata_for_user",
        "private function replaced by assignment: detaches the record first, so /me/…/records/search writes nothing",
        ("codigit.server.privacy:install",),
        (_PRIVACY + "test_annotator_search_does_not_write", _PRIVACY + "test_hidden_metadata_stays_hidden", _IN_PLACE),
    ),
    Hook(
        "argilla-server",
        "argilla_server.contexts.datasets.get_dataset_progress",
        "the replaced progress route computes what upstream's does, then scopes the users",
        ("codigit.server.privacy:_install_progress",),
        (_PROGRESS,),
    ),
    Hook(
        "argilla-server",
        "argilla_server.contexts.datasets.get_dataset_users_progress",
        "the replaced users-progress route computes what upstream's does, then scopes it",
        ("codigit.server.privacy:_install_progress",),
        (_PROGRESS,),
    ),
    Hook(
        "argilla-server",
        "argilla_server.api.policies.v1.RecordPolicy.get",
        "the replaced record route authorises as upstream's does",
        ("codigit.server.privacy:install",),
        (_PRIVACY + "test_participant_cannot_reach_another_participants_own_workspace",),
    ),
    Hook(
        "argilla-server",
        "argilla_server.api.policies.v1.DatasetPolicy.get",
        "the replaced progress routes authorise as upstream's do",
        ("codigit.server.privacy:_install_progress",),
        (_PROGRESS,),
    ),
    Hook(
        "argilla-server",
        "argilla_server.api.policies.v1.authorize",
        "applies those policies in the replacement routes",
        ("codigit.server.privacy:install", "codigit.server.privacy:_install_progress"),
        (_PRIVACY + "test_participant_cannot_reach_another_participants_own_workspace",),
    ),
    Hook(
        "argilla-server",
        "argilla_server.api.schemas.v1",
        "response models of the replacement routes (records.Record, responses.Response, datasets.*Progress)",
        ("codigit.server.privacy:install", "codigit.server.privacy:_install_progress"),
        (_READ_GAP, _PROGRESS),
    ),
    Hook(
        "argilla-server",
        "argilla_server.contexts.datasets.create_response",
        "wrapped by assignment on its module (handlers call it through the module): the study's rules at submit",
        ("codigit.server.submit_rules:install",),
        (
            _REFUSED,
            "tests/test_workflow.py::test_answers_the_rules_refuse_are_refused_in_the_study_words_and_not_stored",
            _IN_PLACE,
        ),
    ),
    Hook(
        "argilla-server",
        "argilla_server.contexts.datasets.update_response",
        "wrapped the same way: PUT /responses/{id} is held to the same rules",
        ("codigit.server.submit_rules:install",),
        (_REFUSED, _IN_PLACE),
    ),
    Hook(
        "argilla-server",
        "argilla_server.contexts.datasets.upsert_response",
        "wrapped the same way: bulk mode's POST /me/responses/bulk is held to the same rules",
        ("codigit.server.submit_rules:install",),
        (_REFUSED, _IN_PLACE),
    ),
    Hook(
        "argilla-server",
        "argilla_server.errors.future.UnprocessableEntityError",
        "a refusal subclasses it (skipping its __init__, setting message and code) to get its 422; bad search values",
        ("codigit.server.submit_rules:Refused", "codigit.server.search:SQLSearchEngine._matching"),
        (_REFUSED, _QUIET_422),
    ),
    Hook(
        "argilla-server",
        "argilla_server.api.errors.v1.exception_handlers.set_request_error",
        "a rejected request body gets upstream's 422 without the traceback it logs for each one",
        ("codigit.server.app:quiet_validation_errors",),
        (_QUIET_422, _IN_PLACE),
    ),
    Hook(
        "argilla-server",
        "argilla_server.errors.base_errors.ValidationError",
        "the same 422 body as upstream's handler builds",
        ("codigit.server.app:quiet_validation_errors",),
        (_QUIET_422,),
    ),
    Hook(
        "argilla-server",
        "argilla_server.errors.error_handler.ServerHTTPException",
        "the same 422 body as upstream's handler builds",
        ("codigit.server.app:quiet_validation_errors",),
        (_QUIET_422,),
    ),
    Hook(
        "argilla-server",
        "argilla_server.static",
        "its bundled UI, edited in the per-start copy: text as text, no Google Fonts, refused answers stay, our words",
        ("codigit.server.ui:patch_ui", "codigit.server.app:create_app"),
        (
            _PRIVACY + "test_ui_edits_reach_every_text_field_renderer",
            _PRIVACY + "test_ui_does_not_make_participants_browsers_contact_google",
            "tests/test_browser.py::test_html_script_and_markdown_in_a_story_are_shown_as_text",
        ),
    ),
    # -- argilla-server + rq + fakeredis: background jobs on the server's own loop ----------------------------------
    Hook(
        "argilla-server",
        "argilla_server.jobs.queues.REDIS_CONNECTION",
        "rebound to an in-process fakeredis in every argilla_server module holding it (startup ping, GET /jobs)",
        ("codigit.server.jobs:install_in_process", "codigit.server.jobs:run_worker", "codigit.server.app:create_app"),
        (_JOB, _IN_PLACE),
    ),
    Hook(
        "argilla-server",
        "argilla_server.jobs.queues.DEFAULT_QUEUE",
        "its connection swapped and its enqueue wrapped (below); the --redis-url worker listens to it",
        ("codigit.server.jobs:install_in_process", "codigit.server.jobs:run_worker"),
        (_JOB, _SERVER + "test_redis_url_uses_a_real_redis_and_an_rq_worker", _IN_PLACE),
    ),
    Hook(
        "argilla-server",
        "argilla_server.jobs.queues.HIGH_QUEUE",
        "as DEFAULT_QUEUE",
        ("codigit.server.jobs:install_in_process", "codigit.server.jobs:run_worker"),
        (_IN_PLACE,),
    ),
    Hook(
        "rq",
        "rq.queue.Queue._enqueue_job",
        "wrapped on each queue: what is enqueued runs on uvicorn's loop (rq's sync mode starts a second loop)",
        ("codigit.server.jobs:_run_what_is_enqueued",),
        (_JOB, _IN_PLACE),
    ),
    Hook(
        "rq",
        "rq.job.Job.prepare_for_execution",
        "marks the job started as rq's worker does, so GET /api/v1/jobs/{id} reports it",
        ("codigit.server.jobs:_perform",),
        (_JOB,),
    ),
    Hook(
        "rq",
        "rq.job.Job._result",
        "the job's return value, set where rq's worker sets it before recording success",
        ("codigit.server.jobs:_perform",),
        (_JOB,),
    ),
    Hook(
        "rq",
        "rq.job.Job._handle_success",
        "records the finished job as rq's worker does",
        ("codigit.server.jobs:_perform",),
        (_JOB,),
    ),
    Hook(
        "rq",
        "rq.job.Job._handle_failure",
        "records a failed job (with its traceback) as rq's worker does",
        ("codigit.server.jobs:_perform",),
        (_EXISTS,),
    ),
    Hook(
        "rq",
        "rq.job.Job.retries_left",
        "a failed job is retried after get_retry_interval(), as often as argilla-server asked",
        ("codigit.server.jobs:_perform",),
        (_EXISTS,),
    ),
    Hook(
        "rq",
        "rq.Worker",
        "`--redis-url`: a real worker process on argilla-server's queues",
        ("codigit.server.jobs:run_worker",),
        (_SERVER + "test_redis_url_uses_a_real_redis_and_an_rq_worker",),
    ),
    Hook(
        "fakeredis",
        "fakeredis.FakeStrictRedis",
        "an in-process Redis: argilla-server's startup ping and rq's job bookkeeping, without a Redis server",
        ("codigit.server.jobs:install_in_process",),
        (_JOB, _IN_PLACE),
    ),
    Hook(
        "starlette",
        "starlette.routing.Router.lifespan_context",
        "replaced by a wrapper that lets running jobs finish (bounded) before the loop closes at shutdown",
        ("codigit.server.jobs:finish_jobs_on_shutdown",),
        (_IN_PLACE, _RESTART),
    ),
    # -- uvicorn ------------------------------------------------------------------------------------------------
    Hook(
        "uvicorn",
        "uvicorn.Server.capture_signals",
        "overridden: a graceful shutdown on SIGINT/SIGTERM exits 0 instead of re-raising the signal",
        ("codigit.server.serve:_Server",),
        (_RESTART, "tests/test_cli.py::test_non_loopback_bind_warns", _IN_PLACE),
    ),
    Hook(
        "uvicorn",
        "uvicorn.Server.handle_exit",
        "the signal handler the override installs, as uvicorn's own does",
        ("codigit.server.serve:_Server",),
        (_RESTART,),
    ),
    # -- argilla (the SDK) --------------------------------------------------------------------------------------
    Hook(
        "argilla",
        "argilla._exceptions",
        "the SDK's exceptions live in a private module: bad key, server failures, a create that already landed",
        ("codigit.client:connect", "codigit.client:argilla_errors", "codigit.participants:_create_account"),
        (
            "tests/test_cli.py::test_wrong_api_key_is_one_line",
            "tests/test_participants_safety.py::test_two_adds_at_once_both_succeed_and_keep_every_password",
        ),
    ),
    Hook(
        "argilla",
        "argilla.records._resource.Record._server_id",
        "the record's server id (the SDK's `id` is the external id) for the per-record endpoints",
        (
            "codigit.forms:sync_words",
            "codigit.participants:_remove_from_review_rounds",
            "codigit.workshop:play_workshop",
        ),
        (
            "tests/test_workflow.py::test_withdrawal_takes_the_story_out_of_review_and_out_of_a_release_from_an_older_snapshot",
            "tests/test_demo.py::test_the_workshop_happened_on_the_server_as_the_demo_data_says",
        ),
    ),
    Hook(
        "argilla",
        "argilla.datasets._resource.Dataset._model",
        "its `status`: a create cut short leaves a draft dataset, made again whole",
        ("codigit.forms:ensure_dataset",),
        ("tests/test_participants_safety.py::test_a_half_made_private_dataset_is_completed_not_an_error",),
    ),
    # -- TRL ----------------------------------------------------------------------------------------------------
    Hook(
        "trl",
        "trl.trainer.sft_trainer.SFTTrainer._total_train_tokens",
        "the label-only loss keeps TRL's input-token count (its `num_tokens` log) as TRL's compute_loss would",
        ("codigit.train.loss:LabelOnlyLossSFTTrainer.compute_loss",),
        (_TRAIN + "test_one_process_uses_the_label_only_loss", _IN_PLACE),
    ),
    Hook(
        "trl",
        "trl.trainer.sft_trainer.SFTTrainer._metrics",
        "where that count is logged from",
        ("codigit.train.loss:LabelOnlyLossSFTTrainer.compute_loss",),
        (_TRAIN + "test_one_process_uses_the_label_only_loss", _IN_PLACE),
    ),
    Hook(
        "trl",
        "trl.TrlParser._actions",
        "argparse's list of the parser's options: a recipe key that is none of them is one line naming it",
        ("codigit.train.recipe:parse_recipe",),
        (_TRAIN + "test_bad_recipes_are_one_line_errors", _TRAIN + "test_every_recipe_in_experiments_parses"),
    ),
    # -- transformers -------------------------------------------------------------------------------------------
    Hook(
        "transformers",
        "transformers.trainer_optimizer._BITSANDBYTES_OPTIMIZERS",
        "the optimisers that need bitsandbytes, read to say so before a model loads (no default: a rename fails)",
        ("codigit.train.run:_require_bitsandbytes",),
        (_TRAIN + "test_quantised_recipe_without_bitsandbytes_is_a_one_line_error",),
    ),
    Hook(
        "transformers",
        "transformers.TrainingArguments.mixed_precision",
        "derived from bf16 once, in __post_init__: set with it when a CPU without bf16 falls back to fp32",
        ("codigit.train.run:prepare",),
        (_EXISTS,),
    ),
    Hook(
        "transformers",
        "transformers.convert_slow_tokenizer.TikTokenConverter.load_tiktoken_bpe",
        "overridden to hand over quicktok's Llama-3 ranks: the tokenizer is built offline, without tiktoken",
        ("codigit.train.llama3:build_tokenizer",),
        (_TRAIN + "test_offline_tokenizer_is_byte_exact_and_speaks_llama31", _IN_PLACE),
    ),
)
