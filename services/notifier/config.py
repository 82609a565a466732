from pydantic import Field, SecretStr

from shared.settings import CommonSettings, load_settings


class Settings(CommonSettings):
    notifier_port: int = Field(8084, description="Port of the health endpoints.")
    consumer_group: str = Field("notifier", description="Kafka consumer group of this service.")
    smtp_host: str = Field("127.0.0.1", description="SMTP server for e-mail to the security contact.")
    smtp_port: int = Field(1025)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = Field("csp-triage@localhost", description="From address of the e-mails.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")


def get_settings() -> Settings:
    return load_settings(Settings)
