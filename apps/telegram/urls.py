from django.urls import path

from apps.telegram import views

urlpatterns = [
    path("code/", views.link_code, name="telegram-code"),
    path("unlink/", views.unlink, name="telegram-unlink"),
]
