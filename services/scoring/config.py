from pydantic import Field

from shared.settings import CommonSettings, load_settings


class Settings(CommonSettings):
    read_api_port: int = Field(8082, description="Port of the read API and the dashboard.")
    consumer_group: str = Field("scoring", description="Kafka consumer group of this service.")


def get_settings() -> Settings:
    return load_settings(Settings)
