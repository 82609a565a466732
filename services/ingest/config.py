from pydantic import Field

from shared.settings import CommonSettings, load_settings


class Settings(CommonSettings):
    ingest_port: int = Field(8081, description="Port of the write API.")
    max_body_bytes: int = Field(5 * 1024 * 1024, description="Largest accepted request body; larger is 413.")
    max_alerts_per_request: int = Field(1000, description="Most alerts in one POST; more is 413.")


def get_settings() -> Settings:
    return load_settings(Settings)
