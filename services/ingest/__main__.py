from services.ingest.config import get_settings
from shared.service import serve

if __name__ == "__main__":
    settings = get_settings()
    serve("services.ingest.app:create_app", settings, "ingest", settings.ingest_port, workers=settings.ingest_workers)
