"""Request dependencies: the process-wide services built at start-up."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.container import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
