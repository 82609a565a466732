from services.response_time.config import get_settings
from shared.service import serve

if __name__ == "__main__":
    settings = get_settings()
    serve("services.response_time.app:create_app", settings, "response-time", settings.response_time_port)
