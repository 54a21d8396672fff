"""Static data of the demo territory: the communes of a CPTS shaped like VIVEVAL (Dordogne, around
Vergt, Villamblard, Val de Louyre et Caudeau and Coursac) and pools of plausible French names.

INSEE codes are the official geographic codes (COG), not postal codes; each one below was checked
against the COG. Merged communes appear under their current name and code.
"""

from typing import NamedTuple


class Commune(NamedTuple):
    insee: str
    name: str
    postal_code: str
    population: int


# 39 communes, about 19 000 inhabitants by the latest legal populations (the seed says 17 500).
TERRITORY_COMMUNES: tuple[Commune, ...] = (
    Commune("24571", "Vergt", "24380", 1773),
    Commune("24061", "Bourrou", "24110", 139),
    Commune("24094", "Chalagnac", "24380", 442),
    Commune("24146", "Creyssensac-et-Pissot", "24380", 273),
    Commune("24160", "Église-Neuve-de-Vergt", "24380", 579),
    Commune("24190", "Fouleix", "24380", 277),
    Commune("24208", "Grun-Bordas", "24380", 244),
    Commune("24220", "Lacropte", "24380", 699),
    Commune("24365", "Saint-Amand-de-Vergt", "24380", 242),
    Commune("24459", "Saint-Mayme-de-Péreyrol", "24380", 286),
    Commune("24468", "Saint-Michel-de-Villadeix", "24380", 298),
    Commune("24480", "Saint-Paul-de-Serre", "24380", 337),
    Commune("24518", "Salon", "24380", 261),
    Commune("24576", "Veyrines-de-Vergt", "24380", 244),
    Commune("24581", "Villamblard", "24140", 851),
    Commune("24031", "Beauregard-et-Bassac", "24140", 309),
    Commune("24034", "Beleymas", "24140", 288),
    Commune("24059", "Bourgnac", "24400", 354),
    Commune("24077", "Campsegret", "24140", 407),
    Commune("24123", "Clermont-de-Beauregard", "24140", 120),
    Commune("24155", "Douville", "24140", 453),
    Commune("24161", "Église-Neuve-d'Issac", "24400", 121),
    Commune("24211", "Issac", "24400", 437),
    Commune("24234", "Les Lèches", "24400", 389),
    Commune("24285", "Montagnac-la-Crempse", "24140", 378),
    Commune("24414", "Saint-Georges-de-Montclard", "24140", 270),
    Commune("24422", "Saint-Hilaire-d'Estissac", "24140", 130),
    Commune("24426", "Saint-Jean-d'Estissac", "24140", 158),
    Commune("24456", "Saint-Martin-des-Combes", "24140", 205),
    Commune("24259", "Eyraud-Crempse-Maurens", "24140", 1703),
    Commune("24362", "Val de Louyre et Caudeau", "24510", 1585),
    Commune("24405", "Saint-Félix-de-Villadeix", "24510", 314),
    Commune("24407", "Sainte-Foy-de-Longas", "24510", 242),
    Commune("24251", "Manzac-sur-Vern", "24110", 535),
    Commune("24139", "Coursac", "24430", 2380),
    Commune("24327", "Pezuls", "24510", 113),
    Commune("24445", "Saint-Marcel-du-Périgord", "24510", 137),
    Commune("24318", "Paunat", "24510", 320),
    Commune("24224", "Lamonzie-Montastruc", "24520", 708),
)

COMMUNES_BY_INSEE = {commune.insee: commune for commune in TERRITORY_COMMUNES}

# The main communes of the territory, where the structures stand.
VERGT = "24571"
VILLAMBLARD = "24581"
VAL_DE_LOUYRE_ET_CAUDEAU = "24362"
COURSAC = "24139"
EYRAUD_CREMPSE_MAURENS = "24259"
LACROPTE = "24220"
MANZAC_SUR_VERN = "24251"

# Outside the territory: maternity wards and hospitals where many patients were born.
PERIGUEUX = "24322"
BERGERAC = "24037"
OTHER_FRENCH_BIRTH_PLACES = (
    "33063",  # Bordeaux
    "87085",  # Limoges
    "24520",  # Sarlat-la-Canéda
    "75114",  # Paris 14e arrondissement (a NIR names the arrondissement, not 75056)
)

# Births abroad: "99" followed by the INSEE country code.
FOREIGN_BIRTH_PLACES = (
    "99350",  # Maroc
    "99352",  # Algérie
    "99139",  # Portugal
    "99134",  # Espagne
    "99132",  # Royaume-Uni
    "99135",  # Pays-Bas
)

LAST_NAMES = tuple(
    [
        "Martin",
        "Bernard",
        "Dubois",
        "Durand",
        "Lefèvre",
        "Moreau",
        "Laurent",
        "Simon",
        "Michel",
        "Garcia",
        "Roux",
        "Fournier",
        "Girard",
        "Bonnet",
        "Dupont",
        "Lambert",
        "Fontaine",
        "Rousseau",
        "Vincent",
        "Faure",
        "André",
        "Mercier",
        "Blanc",
        "Guérin",
        "Boyer",
        "Garnier",
        "Chevalier",
        "Gauthier",
        "Perrin",
        "Robin",
        "Clément",
        "Morin",
        "Nicolas",
        "Henry",
        "Mathieu",
        "Gautier",
        "Masson",
        "Marchand",
        "Duval",
        "Denis",
        "Lemoine",
        "Brunet",
        "Roy",
        "Meunier",
        "Leroy",
        "Delpech",
        "Lacoste",
        "Chassaing",
        "Lachaud",
        "Veyssière",
        "Bouyssou",
        "Mazeau",
        "Dufraisse",
        "Lagarde",
        "Pradier",
        "Reynaud",
        "Boissière",
        "Lafon",
        "Puyrigaud",
        "Gipoulou",
        "Labrousse",
        "Delmas",
        "Lavergne",
        "Teyssandier",
        "Bourdeix",
        "Faurie",
        "Castang",
        "Marty",
        "Chapoulie",
        "Bordas",
        "Peyrot",
        "Lescure",
        "Grenier",
        "Roques",
        "Maury",
        "Desmoulin",
        "Vergnaud",
        "Rebière",
        "Fargeot",
        "Beylot",
        "Malville",
        "Sarlande",
        "Montet",
        "Audebert",
        "Doumeyrou",
        "Pasquet",
        "Dalbavie",
        "Charbonnel",
        "Monteil",
        "Vialle",
        "Rouchon",
        "Soulier",
        "Ferrand",
        "Cluzeau",
    ]
)

FEMALE_FIRST_NAMES = tuple(
    [
        "Marie",
        "Jeanne",
        "Monique",
        "Françoise",
        "Jacqueline",
        "Simone",
        "Odette",
        "Yvette",
        "Paulette",
        "Colette",
        "Denise",
        "Suzanne",
        "Madeleine",
        "Germaine",
        "Josette",
        "Micheline",
        "Nicole",
        "Christiane",
        "Danielle",
        "Michèle",
        "Annie",
        "Martine",
        "Sylvie",
        "Catherine",
        "Isabelle",
        "Nathalie",
        "Valérie",
        "Sandrine",
        "Céline",
        "Aurélie",
        "Émilie",
        "Julie",
        "Camille",
        "Léa",
        "Manon",
        "Chloé",
        "Inès",
        "Jade",
        "Louise",
        "Alice",
        "Anne",
        "Hélène",
        "Élise",
        "Claire",
        "Marie-Claude",
        "Anne-Marie",
        "Marie-Thérèse",
        "Bernadette",
        "Geneviève",
        "Lucienne",
    ]
)

MALE_FIRST_NAMES = tuple(
    [
        "Jean",
        "Pierre",
        "Michel",
        "André",
        "Jacques",
        "René",
        "Louis",
        "Marcel",
        "Roger",
        "Henri",
        "Robert",
        "Georges",
        "Raymond",
        "Maurice",
        "Bernard",
        "Gérard",
        "Claude",
        "Alain",
        "Daniel",
        "Guy",
        "Christian",
        "Serge",
        "Patrick",
        "Philippe",
        "Thierry",
        "Éric",
        "Pascal",
        "Laurent",
        "Stéphane",
        "Frédéric",
        "Nicolas",
        "Julien",
        "Sébastien",
        "Mathieu",
        "Thomas",
        "Lucas",
        "Hugo",
        "Yves",
        "Gabriel",
        "Arthur",
        "Jules",
        "Raphaël",
        "Léo",
        "Paul",
        "Antoine",
        "Jean-Pierre",
        "Jean-Claude",
        "Jean-Louis",
        "Jean-Marie",
        "François",
    ]
)

# "{n}" is replaced by a house number; the lieux-dits carry none.
STREETS = (
    "{n} rue de la République",
    "{n} avenue de Périgueux",
    "{n} route de Bergerac",
    "{n} rue du Marché",
    "{n} place de l'Église",
    "{n} rue des Écoles",
    "{n} chemin des Vignes",
    "{n} impasse des Noyers",
    "{n} allée des Châtaigniers",
    "{n} rue du Moulin",
    "{n} route de la Forêt",
    "{n} chemin de la Fontaine",
    "{n} rue Bertran-de-Born",
    "{n} rue Eugène-Le-Roy",
    "{n} avenue du 8-Mai-1945",
    "{n} rue de la Mairie",
    "Le Bourg",
    "Lieu-dit Les Granges",
    "Lieu-dit La Croix-Blanche",
    "Lieu-dit Le Peuch",
    "Lieu-dit La Borie",
    "Lieu-dit Les Combes",
    "Lieu-dit Le Maine",
    "Lieu-dit La Grèze",
)
