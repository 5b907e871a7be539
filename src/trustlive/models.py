"""Imports every domain's tables so that Alembic and tests see one complete metadata."""

from trustlive.accounts import models as _accounts  # noqa: F401
from trustlive.aftersales import models as _aftersales  # noqa: F401
from trustlive.care import models as _care  # noqa: F401
from trustlive.catalog import models as _catalog  # noqa: F401
from trustlive.consignment import models as _consignment  # noqa: F401
from trustlive.content import models as _content  # noqa: F401
from trustlive.db import Base
from trustlive.events import OutboxEvent as _outbox  # noqa: F401
from trustlive.feed import models as _feed  # noqa: F401
from trustlive.fulfillment import models as _fulfillment  # noqa: F401
from trustlive.ledger import models as _ledger  # noqa: F401
from trustlive.live import models as _live  # noqa: F401
from trustlive.orders import models as _orders  # noqa: F401
from trustlive.payments import models as _payments  # noqa: F401
from trustlive.reviews import models as _reviews  # noqa: F401
from trustlive.social import models as _social  # noqa: F401
from trustlive.trust import models as _trust  # noqa: F401

metadata = Base.metadata
