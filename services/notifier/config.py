from pydantic import DirectoryPath, Field, SecretStr, model_validator

from services.notifier.domain import StormPolicy
from shared.catalogue import CatalogueError, RequirementType, load_catalogue
from shared.responses import RESPONSE_TARGET_HOURS
from shared.settings import CommonSettings, load_settings


class Settings(CommonSettings):
    notifier_port: int = Field(8084, description="Port of the health endpoints.")
    consumer_group_name = "notifier"  # default group: KAFKA_TOPIC_PREFIX + this

    smtp_host: str = Field("127.0.0.1", description="SMTP server for e-mail to the security contact.")
    smtp_port: int = Field(1025)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = Field("csp-triage@localhost", description="From address of the e-mails.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_tls: bool = Field(
        False, description="Connect to the SMTP server over TLS from the start (port 465)."
    )
    smtp_timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one SMTP conversation.")

    escalation_email: str | None = Field(
        None, description="Address that receives escalations besides the channels flagged `escalation`."
    )
    requirement_help_url: str | None = Field(
        None,
        description="Instructions of the response-time requirement, linked from every message "
        "(default: its helpUrl in the requirements catalogue).",
    )
    notifier_template_dir: DirectoryPath | None = Field(
        None,
        description="Directory of e-mail templates replacing the shipped ones of the same name "
        "(services/notifier/templates/*.j2); every template is checked at start-up.",
    )
    dashboard_alert_url: str = Field(
        "{publicBaseUrl}/dashboard?tenant={tenantId}&alert={alertId}",
        description="Link to an alert in the dashboard, with {publicBaseUrl}, {tenantId}, {alertId}.",
    )

    reminder_after_seconds: float = Field(3600, ge=0, description="Reminder this long after detection.")
    escalation_after_seconds: float = Field(
        20 * 3600, ge=0, description="Escalation this long after detection."
    )
    response_limit_seconds: float = Field(
        RESPONSE_TARGET_HOURS * 3600, gt=0, description="The requirement's limit, shown as time left."
    )

    contact_catch_up_seconds: float = Field(
        3600,
        ge=0,
        description="An e-mail skipped for want of a security contact less than this long ago is sent "
        "when a contact arrives (if its alert is still open); older ones are not.",
    )

    storm_threshold: int = Field(
        5,
        ge=0,
        description="A storm: a channel people read (the contact's e-mail, a Teams channel) that had this many new "
        "alerts of a tenant within STORM_WINDOW_SECONDS gets each further one in a digest instead of on its own "
        "(0: never group). Ticketing webhooks always get each alert.",
    )
    storm_window_seconds: float = Field(120, gt=0, description="The window a storm is counted over.")
    storm_digest_wait_seconds: float = Field(
        60, ge=0, description="A digest goes out this long after its first alert (or at once when it holds "
        "the most alerts one bulk acknowledge link can carry, 50); alerts meanwhile join it.",
    )

    webhook_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one webhook request.")
    max_attempts: int = Field(8, ge=1, description="Attempts of one delivery before it is dead-lettered.")
    retry_base_seconds: float = Field(
        5.0, gt=0, description="First retry delay; doubles each attempt, with jitter."
    )
    retry_max_seconds: float = Field(3600.0, gt=0, description="Longest delay between two attempts.")
    max_retry_after_seconds: float = Field(
        6 * 3600.0, gt=0, description="A longer Retry-After is capped to this."
    )
    delivery_lease_seconds: float = Field(
        60.0, gt=0, description="A claimed delivery is taken again after this long if its sender vanished."
    )
    worker_poll_seconds: float = Field(1.0, gt=0, description="How often the worker looks for due work.")
    worker_batch_size: int = Field(20, ge=1, description="Deliveries sent at once by one notifier process.")
    # Larger than 200 (#15): under a backlog (a burst) fewer, larger transactions, offset commits and relay
    # rounds per alert; at 1000, 20,000 alerts in lists of 100 drained 13% sooner (median of 3 interleaved A/B
    # pairs), with no change to write -> visible at 200/s. The consumers on that path (response time, the read
    # model, the write API's deliveries) keep theirs: with all at 1000, that p99 was 2-3x as long (3 interleaved
    # A/B pairs). 500, not 1000: a batch's events, payloads and digests are held until it commits, and at 1000 the
    # notifier's peak RSS in the lists pipeline was 151-152 MB (the goal: 150), at 500 128-129 MB, its CPU per
    # alert ~5% more (3 interleaved A/B pairs; the pipeline's drain no different within the noise).
    notifier_batch_size: int = Field(
        500, ge=1, le=10_000, description="Most `alerts` events applied in one PostgreSQL transaction.")
    outbox_alarm_seconds: float = Field(
        60.0,
        gt=0,
        description="`/health/ready` reports the outbox failing once its oldest waiting event is older than this "
        "(the relay cannot publish: the broker away, or a fault of the relay; the check says which).",
    )
    delivery_log_retention_days: float = Field(
        90,
        gt=0,
        description="Finished delivery-log rows (delivered, dead, skipped, cancelled) and timers "
        "(fired, cancelled) older than this are deleted.",
    )
    prune_every_seconds: float = Field(3600, gt=0, description="How often the finished rows are pruned.")

    @property
    def storm_policy(self) -> StormPolicy:
        return StormPolicy(self.storm_threshold, self.storm_window_seconds, self.storm_digest_wait_seconds)

    @property
    def send_bound_seconds(self) -> float:
        """The longest one whole send may take: the lease less a margin to record the outcome.

        aiosmtplib's timeout applies per SMTP command and httpx's per phase, so neither bounds a
        whole send; past the lease another worker would claim the row and send it a second time.
        """
        margin = min(5.0, self.delivery_lease_seconds * 0.2)
        return self.delivery_lease_seconds - margin

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> "Settings":
        longest = max(self.webhook_timeout_seconds, self.smtp_timeout_seconds)
        if self.delivery_lease_seconds <= longest:
            raise ValueError(
                f"DELIVERY_LEASE_SECONDS must exceed the longest send timeout ({longest} s), or a "
                "slow send would be taken again by another worker while it runs"
            )
        return self

    @model_validator(mode="after")
    def _help_url_from_the_catalogue(self) -> "Settings":
        # One source for the requirement's instructions: the catalogue the read API shows too.
        if self.requirement_help_url is None:
            try:
                catalogue = load_catalogue(self.catalogue_path)
                requirement = catalogue.get(RequirementType.security_alerts_promptly_resolved)
            except CatalogueError as exc:
                raise ValueError(str(exc)) from None
            self.requirement_help_url = (requirement.help_url if requirement and requirement.help_url
                                         else "https://learn.microsoft.com/partner-center/security/")
        return self


def get_settings() -> Settings:
    return load_settings(Settings)
