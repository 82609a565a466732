from services.notifier.config import get_settings
from shared.service import serve

if __name__ == "__main__":
    settings = get_settings()
    serve("services.notifier.app:create_app", settings, "notifier", settings.notifier_port)
