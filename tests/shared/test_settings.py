"""The settings loader: environment only, development secrets refused outside development."""

import pytest

from shared.settings import DEV_OPERATOR_API_KEY, CommonSettings, load_settings


def test_development_defaults_are_refused_outside_development(monkeypatch, capsys):
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    monkeypatch.delenv("OPERATOR_API_KEY", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        load_settings(CommonSettings)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "OPERATOR_API_KEY" in message and "WEBHOOK_SECRET" in message and "ENVIRONMENT=development" in message
    assert "ACTION_LINK_KEYS" in message and "SEALING_KEYS" in message


def test_a_short_action_link_key_is_named(monkeypatch, capsys):
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("ACTION_LINK_KEYS", "a-long-enough-key-of-thirty-two-chars!,short")
    with pytest.raises(SystemExit):
        load_settings(CommonSettings)
    assert "ACTION_LINK_KEYS: must be one or more keys of at least 32 characters" in capsys.readouterr().err


def test_development_mode_allows_the_published_defaults(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "development")
    settings = load_settings(CommonSettings)
    assert settings.operator_api_key.get_secret_value() == DEV_OPERATOR_API_KEY
    assert settings.is_development


def test_production_with_own_secrets_and_usual_variable_names(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("OPERATOR_API_KEY", "a-real-operator-key-of-some-length")
    monkeypatch.setenv("WEBHOOK_SECRET", "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=")
    monkeypatch.setenv("SEALING_KEYS", "41qThByuTED8dwzHgv8c1h6y9MCIBvqxLAKaqci5wr0=")
    monkeypatch.setenv("ACTION_LINK_KEYS", "an-action-link-key-of-32-characters-or-more")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/x")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")
    settings = load_settings(CommonSettings)
    assert settings.kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert settings.database_url == "postgresql://u:p@db:5432/x"
    assert settings.redis_url == "redis://cache:6379/1"
    assert not settings.is_development


def test_a_malformed_webhook_secret_is_named(monkeypatch, capsys):
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("WEBHOOK_SECRET", "not-a-secret")
    with pytest.raises(SystemExit):
        load_settings(CommonSettings)
    assert "WEBHOOK_SECRET: must be a Standard Webhooks secret" in capsys.readouterr().err


def test_a_short_operator_key_is_refused_outside_development(monkeypatch, capsys):
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("OPERATOR_API_KEY", "short-key")
    monkeypatch.setenv("WEBHOOK_SECRET", "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=")
    monkeypatch.setenv("SEALING_KEYS", "41qThByuTED8dwzHgv8c1h6y9MCIBvqxLAKaqci5wr0=")
    monkeypatch.setenv("ACTION_LINK_KEYS", "an-action-link-key-of-32-characters-or-more")
    with pytest.raises(SystemExit):
        load_settings(CommonSettings)
    assert "OPERATOR_API_KEY must be at least 24 characters" in capsys.readouterr().err


def test_the_consumer_group_defaults_to_the_topic_prefix_and_the_service(monkeypatch):
    from services.notifier.config import Settings as NotifierSettings
    from services.response_time.config import Settings as ResponseTimeSettings
    from services.scoring.config import Settings as ScoringSettings

    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.delenv("CONSUMER_GROUP", raising=False)
    monkeypatch.delenv("KAFKA_TOPIC_PREFIX", raising=False)
    assert load_settings(ResponseTimeSettings).consumer_group == "response-time"
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", "staging-")
    assert [load_settings(s).consumer_group for s in (ResponseTimeSettings, ScoringSettings, NotifierSettings)] == [
        "staging-response-time", "staging-scoring", "staging-notifier"]
    monkeypatch.setenv("CONSUMER_GROUP", "chosen")
    assert load_settings(ScoringSettings).consumer_group == "chosen"
