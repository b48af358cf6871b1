from __future__ import annotations

import factory
from django.contrib.auth import get_user_model


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    @factory.post_generation
    def save_password(self, create, extracted, **kwargs):
        if create:
            self.save()


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "customers.Customer"

    external_id = factory.Sequence(lambda n: f"site-user-{n}")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    name = factory.Sequence(lambda n: f"Customer {n}")


class AttributeDefinitionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "customers.AttributeDefinition"
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"attribute_{n}")
    label = factory.LazyAttribute(lambda definition: definition.key.replace("_", " ").title())
    type = "string"
