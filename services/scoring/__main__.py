from services.scoring.config import get_settings
from shared.service import serve

if __name__ == "__main__":
    settings = get_settings()
    serve("services.scoring.app:create_app", settings, "scoring", settings.read_api_port)
