"""The gateway's engine timeouts: firstByteTimeoutS and idleTimeoutS, upstreamTimeoutS as a deprecated alias."""

import pytest
from pydantic import ValidationError

from flotilla.spec.gateway import GatewaySpec


def test_defaults():
    g = GatewaySpec()
    assert (g.connect_timeout_s, g.first_byte_timeout_s, g.idle_timeout_s, g.upstream_timeout_s) == (3.0, 600.0, 120.0, None)


def test_the_deprecated_name_sets_the_first_byte_timeout():
    g = GatewaySpec.model_validate({"upstreamTimeoutS": 90})
    assert g.first_byte_timeout_s == 90 and g.idle_timeout_s == 120


def test_both_names_with_different_values_is_an_error():
    with pytest.raises(ValidationError, match="give firstByteTimeoutS only"):
        GatewaySpec.model_validate({"upstreamTimeoutS": 90, "firstByteTimeoutS": 30})
