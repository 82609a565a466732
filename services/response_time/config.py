from pydantic import Field

from shared.settings import CommonSettings, load_settings


class Settings(CommonSettings):
    response_time_port: int = Field(8083, description="Port of the health endpoints.")
    consumer_group: str = Field("response-time", description="Kafka consumer group of this service.")


def get_settings() -> Settings:
    return load_settings(Settings)
