"""Request and response bodies."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Name = Annotated[str, Field(min_length=1, max_length=200)]


class ItemCreate(BaseModel):
    name: Name
    description: str | None = None


class ItemUpdate(BaseModel):
    """Partial update: only the fields sent are changed."""

    name: Name | None = None
    description: str | None = None

    @field_validator("name")
    @classmethod
    def name_not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("name cannot be null")
        return value


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    created_at: datetime


class Health(BaseModel):
    status: Literal["ok", "error"]
    release: str
    python: str
    environment: str
    database_revision: str | None
