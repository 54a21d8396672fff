"""The communes of the territory by INSEE code: their names, for every page (users read names, never codes), and
their centres, for the distance from a patient's commune to a professional's (the IDEL suggested first is the
nearest free one).

Source of the coordinates: the centre of each commune (WGS 84, degrees) as published with the « Base officielle
des codes postaux » (La Poste, data.gouv.fr, 1 August 2024) joined to INSEE's Code officiel géographique
(20 February 2024), as compiled in the public dataset github.com/rcarlier/datas.fun, France/communes.csv
(commit b987408), read on 3 December 2026. Names as in the COG. The CPTS covers the 39 communes around Vergt,
Villamblard, Val de Louyre et Caudeau and Coursac (hub.demo.data), plus Périgueux and Bergerac where many
patients are born or treated; a commune not listed has a name « hors territoire » and no distance.
"""

import math
from typing import NamedTuple

EARTH_RADIUS_KM = 6371.0088  # the IUGG mean radius


class Commune(NamedTuple):
    insee: str
    name: str
    latitude: float
    longitude: float


COMMUNES: tuple[Commune, ...] = (
    Commune("24571", "Vergt", 45.04482, 0.71418),
    Commune("24061", "Bourrou", 45.04746, 0.60283),
    Commune("24094", "Chalagnac", 45.09197, 0.68204),
    Commune("24146", "Creyssensac-et-Pissot", 45.0718, 0.66878),
    Commune("24160", "Église-Neuve-de-Vergt", 45.0945, 0.73204),
    Commune("24190", "Fouleix", 44.97622, 0.67376),
    Commune("24208", "Grun-Bordas", 45.04615, 0.64685),
    Commune("24220", "Lacropte", 45.0515, 0.8383),
    Commune("24365", "Saint-Amand-de-Vergt", 44.989, 0.69206),
    Commune("24459", "Saint-Mayme-de-Péreyrol", 45.01911, 0.64813),
    Commune("24468", "Saint-Michel-de-Villadeix", 44.99426, 0.73346),
    Commune("24480", "Saint-Paul-de-Serre", 45.07939, 0.6332),
    Commune("24518", "Salon", 45.03209, 0.77159),
    Commune("24576", "Veyrines-de-Vergt", 44.98974, 0.77341),
    Commune("24581", "Villamblard", 45.0304, 0.56118),
    Commune("24031", "Beauregard-et-Bassac", 44.99524, 0.63312),
    Commune("24034", "Beleymas", 44.98634, 0.49588),
    Commune("24059", "Bourgnac", 45.01478, 0.39702),
    Commune("24077", "Campsegret", 44.94322, 0.56312),
    Commune("24123", "Clermont-de-Beauregard", 44.94843, 0.64606),
    Commune("24155", "Douville", 44.99822, 0.59401),
    Commune("24161", "Église-Neuve-d'Issac", 44.97943, 0.43204),
    Commune("24211", "Issac", 45.01433, 0.45056),
    Commune("24234", "Les Lèches", 44.97977, 0.38795),
    Commune("24285", "Montagnac-la-Crempse", 44.97967, 0.53817),
    Commune("24414", "Saint-Georges-de-Montclard", 44.9312, 0.6127),
    Commune("24422", "Saint-Hilaire-d'Estissac", 45.01408, 0.50288),
    Commune("24426", "Saint-Jean-d'Estissac", 45.03739, 0.50371),
    Commune("24456", "Saint-Martin-des-Combes", 44.96264, 0.62158),
    Commune("24259", "Eyraud-Crempse-Maurens", 44.93553, 0.48363),
    Commune("24362", "Val de Louyre et Caudeau", 44.97307, 0.77325),
    Commune("24405", "Saint-Félix-de-Villadeix", 44.93155, 0.67528),
    Commune("24407", "Sainte-Foy-de-Longas", 44.93236, 0.7606),
    Commune("24251", "Manzac-sur-Vern", 45.08398, 0.59137),
    Commune("24139", "Coursac", 45.13101, 0.64504),
    Commune("24327", "Pezuls", 44.91182, 0.80517),
    Commune("24445", "Saint-Marcel-du-Périgord", 44.92027, 0.69795),
    Commune("24318", "Paunat", 44.90286, 0.85317),
    Commune("24224", "Lamonzie-Montastruc", 44.90044, 0.58842),
    Commune("24322", "Périgueux", 45.19386, 0.71044),
    Commune("24037", "Bergerac", 44.8519, 0.48828),
)
BY_INSEE = {commune.insee: commune for commune in COMMUNES}
UNKNOWN = "Commune hors territoire"


def commune_name(insee: str | None) -> str:
    """The commune's name; « Commune hors territoire » for a code the hub does not list, « — » for none."""
    if not insee:
        return "—"
    commune = BY_INSEE.get(insee)
    return commune.name if commune else UNKNOWN


def commune_label(insee: str | None) -> str:
    """What a page shows: the name, or for a commune the hub does not list its code, which is all it knows."""
    if insee and insee not in BY_INSEE:
        return f"code INSEE {insee}"
    return commune_name(insee)


def distance_km(from_insee: str | None, to_insee: str | None) -> float | None:
    """Great-circle (haversine) distance between the two communes' centres, None when either is not listed."""
    a, b = BY_INSEE.get(from_insee or ""), BY_INSEE.get(to_insee or "")
    if a is None or b is None:
        return None
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat, dlon = lat2 - lat1, math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))
