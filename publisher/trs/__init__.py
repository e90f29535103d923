"""The publisher's ground floor: the ranking TRs as data and the request/answer records built on them.

Everything above it builds on this package and it builds on nothing of the publisher's: the controls (what a
simulated server answers), the parser (how a raw string becomes a typed value), the settings (which inputs a
feed may give) and the sources (how a request is spelled for the OCX or REST). Import from here:

- :mod:`publisher.trs.spec` — :class:`TrSpec`, its inputs and outputs, :class:`Kind`, and each provider's
  names for them (:class:`OcxSpelling`, :class:`RestSpelling`);
- :mod:`publisher.trs.catalogue` — the TRs (:data:`TRS`) and their lookups, checked at import;
- :mod:`publisher.trs.records` — :class:`TrRequest` and :class:`RawResponse`.
"""

from publisher.trs.catalogue import (
    DEFAULT_TR,
    OPT10023,
    OPT10027,
    OPT10030,
    OPT10032,
    TRS,
    spec_by_api_id,
    spec_by_rqname,
    tr_spec,
)
from publisher.trs.records import RawResponse, TrRequest
from publisher.trs.spec import (
    PAGE_ROWS,
    Kind,
    OcxSpelling,
    Provider,
    RestSpelling,
    Spelling,
    TrInput,
    TrOutput,
    TrSpec,
)

__all__ = [
    "DEFAULT_TR", "OPT10023", "OPT10027", "OPT10030", "OPT10032", "PAGE_ROWS", "TRS", "Kind", "OcxSpelling",
    "Provider", "RawResponse", "RestSpelling", "Spelling", "TrInput", "TrOutput", "TrRequest", "TrSpec",
    "spec_by_api_id", "spec_by_rqname", "tr_spec",
]
