# Les mots de mole pour les pages de la personne, en français (traduits de ../en/mole.ftl, qui fait foi).

## Toutes les pages (templates/base.html)
site-title = mole — vérifier une lésion de la peau
site-tagline = · vérification d'une lésion cutanée
nav-my-cases = Mes demandes
footer-not-a-device = mole est une démonstration de recherche, ni un dispositif médical ni un diagnostic médical.
footer-see-a-doctor = Seul un médecin peut examiner une lésion de la peau. Si un grain de beauté change, saigne, démange ou vous inquiète, consultez un médecin, quoi que dise cette page.
footer-model-link = Ce que vaut le modèle, et sur quoi il a été entraîné
language-switch = Langue

## La page d'envoi (templates/index.html, static/upload.js)
upload-title = Vérifier un grain de beauté
upload-intro = Prenez une photo nette et rapprochée d'un seul grain de beauté, sous une bonne lumière, puis envoyez-la. L'analyse prend en général quelques secondes.
upload-deleted = La demande et sa photo ont été supprimées.
upload-label = Choisir ou prendre une photo
upload-hint = Sur un téléphone, vous pouvez prendre la photo maintenant ou en choisir une dans votre galerie ; sur un ordinateur, vous pouvez aussi la déposer ici. JPEG, PNG ou WebP, jusqu'à { $limit }. La localisation et les autres métadonnées sont retirées de la photo.
upload-preview-alt = La photo que vous avez choisie
upload-submit = Analyser la photo
upload-use-this = Utiliser cette photo
upload-choose-another = Choisir une autre photo
upload-sending = Envoi…
upload-not-a-diagnosis = Ceci n'est pas un diagnostic médical.
upload-notice = Le résultat est une estimation d'un modèle informatique entraîné sur des images de dermatoscope ; il peut se tromper. Montrez à un médecin tout grain de beauté qui vous inquiète.
check-heic = Les photos HEIC ne peuvent pas être lues. Envoyez un JPEG : sur un iPhone, choisissez « Le plus compatible » dans Réglages › Appareil photo › Formats, ou prenez la photo depuis cette page.
check-type = Ce fichier n'est pas une photo que mole peut lire ({ $type }). Choisissez une photo JPEG, PNG ou WebP.
check-size = Cette photo fait { $size } Mo ; la taille maximale acceptée est { $limit }.
check-empty = Ce fichier est vide. Choisissez une autre photo.
check-choose-first = Choisissez d'abord une photo.
check-no-drop = Ce navigateur ne peut pas recevoir un fichier déposé ; utilisez le bouton.

## La page de la demande (templates/case.html, case_panel.html, photo_map.html, history.html)
case-title = Votre vérification — mole
result-title = Résultat
verdict-see-a-doctor = Montrez ce grain de beauté à un médecin.
verdict-looks-benign = Ce grain de beauté semble bénin, mais vérifiez-le à nouveau s'il change.
result-p-malignant = Probabilité estimée que la lésion soit maligne : { $percent }.
result-threshold = Le conseil est de voir un médecin à partir de { $threshold } : un seuil bas, choisi pour manquer peu de lésions malignes
result-how-well = Ce que vaut le modèle
result-chart-title = Les sept diagnostics que le modèle connaît
tag-malignant = maligne
result-sent = Photo envoyée le { $date }.
advice-doctor-title = Que faire maintenant
advice-doctor-when = Prenez rendez-vous dans les deux semaines environ avec votre médecin traitant ou un dermatologue, et montrez-lui cette tache.
advice-doctor-sooner = Consultez plus tôt, dans les jours qui viennent, si elle saigne, grandit vite ou a changé ces dernières semaines.
advice-doctor-bring = Apportez ce résultat : imprimez-le ou enregistrez-le en PDF avec le bouton ci-dessous. La plupart des taches qu'un médecin examine sont sans danger ; cette vérification préfère envoyer chez le médecin plutôt que de manquer un cancer.
advice-benign-title = Ce qu'il faut surveiller
advice-benign-when = Regardez à nouveau la tache dans trois mois environ (une photo sous la même lumière aide à comparer), et voyez un médecin plus tôt si vous remarquez l'un des signes ABCDE :
abcde-a = Asymétrie : les deux moitiés ne se ressemblent pas.
abcde-b = Bords : irréguliers, encochés ou flous.
abcde-c = Couleur : plusieurs teintes, ou des zones noires, bleues, rouges ou blanches.
abcde-d = Diamètre : plus de 6 mm environ (une gomme de crayon).
abcde-e = Évolution : elle change de taille, de forme ou de couleur, ou se met à démanger, former une croûte ou saigner.
result-not-a-diagnosis = Ceci n'est pas un diagnostic médical.
result-notice = C'est l'estimation d'un modèle informatique, qui peut se tromper dans un sens comme dans l'autre. Montrez à un médecin tout grain de beauté qui change, saigne, démange ou vous inquiète.
action-check-another = Vérifier une autre photo
action-print = Imprimer ou enregistrer en PDF
action-my-cases = Mes demandes
technical-title = Détails techniques
technical-model = Modèle
technical-case = Demande
technical-queue = Temps d'attente
technical-inference = Temps dans le modèle
technical-batch = { $wait } (un passage pour { $n } photos)
technical-not-recorded = non enregistré
refused-title = Le modèle ne peut pas juger cette photo
refused-how-title = Comment prendre une photo qu'il peut juger
refused-tip-frame = Seulement la tache et la peau autour, qui remplissent la plus grande partie de l'image.
refused-tip-light = Une lumière du jour uniforme, sans flash, sans ombre sur la tache.
refused-tip-sharp = Nette : restez immobile, à environ 10 cm, et touchez la tache à l'écran pour faire la mise au point.
refused-no-diagnosis = Aucun diagnostic n'a été fait à partir de cette photo. Si la tache vous inquiète, montrez-la à un médecin, quoi que dise cette page.
action-send-another = Envoyer une autre photo
failed-title = La photo n'a pas pu être analysée
action-try-another = Essayer une autre photo
waiting-title = Analyse de votre photo
waiting-updates = Cette page se met à jour toute seule ; inutile de la recharger.
status-queued = En attente du modèle…
status-processing = Analyse de la photo…
status-done = Analyse terminée.
status-failed = La photo n'a pas pu être analysée.
status-refused = Le modèle ne peut pas juger cette photo.
status-deleted = Cette demande a été supprimée.
refusal-too-small = Cette photo est trop petite pour que le modèle voie la peau avec assez de détails.
refusal-too-dark = Cette photo est trop sombre pour que le modèle voie la peau.
refusal-overexposed = Cette photo est trop claire : la peau est délavée.
refusal-too-blurry = Cette photo est trop floue pour que le modèle voie les bords et le motif de la lésion.
refusal-not-a-lesion = Ceci ne ressemble pas à une photo rapprochée d'une lésion de la peau ; le modèle ne peut donc pas la juger.
refusal-unknown = Le modèle n'a pas pu juger cette photo.
advice-too-small = Envoyez la photo en taille réelle (au moins quelques centaines de pixels de côté), pas une miniature.
advice-too-dark = Prenez la photo à la lumière du jour ou sous un bon éclairage intérieur ; évitez votre propre ombre sur la tache.
advice-overexposed = Coupez le flash et sortez du soleil direct ; laissez l'appareil régler l'exposition.
advice-too-blurry = Tenez l'appareil immobile à environ 10 cm de la peau et touchez la tache à l'écran pour faire la mise au point avant de prendre la photo.
advice-not-a-lesion = Photographiez seulement la tache sur la peau : qu'elle remplisse la plus grande partie de l'image, nette et sous une lumière uniforme, sans rien d'autre dans l'image.
advice-unknown = Prenez une photo rapprochée, nette et bien éclairée de la tache seule, et envoyez-la à nouveau.
yours-title = Votre photo
yours-alt = La photo que vous avez envoyée
delete-button = Supprimer cette demande et sa photo
delete-confirm = Supprimer définitivement cette demande et sa photo ?
map-label = Carte d'occultation : quelles parties de la photo ont fait varier l'estimation
map-legend-title = Ce que le modèle a regardé.
map-legend = Le carré est ce que le modèle a vu. Chaque case a été masquée à tour de rôle : les cases rouges sont celles où masquer la peau a baissé la probabilité estimée de malignité (le modèle y voyait des signes d'alerte), les bleues celles où cela l'a augmentée. Plus la couleur est forte, plus le changement est grand (au plus { $largest } ici). Cela montre où le modèle a regardé, pas pourquoi, et ce n'est pas un constat médical.
map-key-red = rouges
map-key-blue = bleues
limits-title = Ce que cette vérification peut et ne peut pas faire
limits-not-a-device = Ce n'est ni un dispositif médical ni un diagnostic : c'est l'estimation d'un modèle informatique, qui peut se tromper dans les deux sens.
limits-training = Il a appris sur environ 10 000 photos de dermatoscope (des gros plans pris à travers une loupe de peau), surtout de peaux claires. Les photos de téléphone et les peaux plus foncées ressemblent moins à ce qu'il a appris ; il y est donc moins fiable.
limits-operating-point = Sur les photos de test, sur 100 lésions qui étaient des cancers, il en a envoyé environ { $caught } chez le médecin et en a manqué environ { $missed } ; sur 100 lésions sans danger, il en a dit environ { $cleared } bénignes et en a envoyé environ { $sent } chez le médecin sans nécessité.
limits-see-a-doctor = Consultez un médecin pour toute tache nouvelle, qui change, saigne, démange ou vous inquiète, quoi que dise cette page.
limits-model = Modèle { $version }
limits-model-link = comment il a été construit et mesuré
history-title = Ce qui est arrivé à cette demande
history-created-you = Vous avez envoyé la photo.
history-created = La photo a été envoyée.
history-queued = Elle a rejoint la file d'attente d'analyse.
history-requeued = Elle a été remise dans la file après une interruption ; rien n'a été perdu.
history-started = Le modèle a commencé à l'analyser.
history-retrying = Un problème passager a interrompu l'analyse ; elle sera reprise.
history-completed = Le modèle l'a analysée.
history-failed = Elle n'a pas pu être analysée.
history-refused = Le modèle a constaté qu'il ne peut pas juger cette photo.
history-explained = Le modèle a indiqué quelles parties de la photo ont compté pour lui.
history-viewed-you = Vous l'avez consultée.
history-viewed-visitor = Quelqu'un qui a le lien l'a consultée.
history-viewed-staff = Le personnel de la clinique l'a consultée.
history-viewed = Elle a été consultée.
history-reviewed = Un clinicien l'a examinée.
history-deleted-you = Vous l'avez supprimée.
history-deleted = Elle a été supprimée.

## L'attente (crates/web/src/wait.rs)
wait-delayed = L'analyse est retardée : la partie de mole qui analyse les photos ne fonctionne pas en ce moment. Votre photo est conservée en sécurité et sera analysée dès son retour. Cette page continue d'attendre ; vous pouvez aussi la fermer et retrouver la demande plus tard dans « Mes demandes ».
wait-processing = Le modèle analyse votre photo en ce moment.
wait-ahead = { $n ->
    [0] Votre photo est la prochaine dans la file.
    [one] 1 photo passe avant la vôtre dans la file.
   *[other] { $n } photos passent avant la vôtre dans la file.
}
wait-expected = Résultat attendu dans { $wait }.
wait-slow = C'est plus long que d'habitude ; votre photo est en sécurité et cette page continue d'attendre.
wait-few-seconds = quelques secondes
wait-seconds = environ { $n } secondes
wait-minutes = environ { $n } minutes

## Mes demandes (templates/my_cases.html)
mine-title = Mes demandes
mine-intro = Les photos envoyées depuis ce navigateur, les plus récentes d'abord. Seul ce navigateur voit cette liste : elle est gardée par un cookie ; un autre navigateur ou appareil a sa propre liste, et effacer les cookies de ce navigateur la fait perdre (les liens vers les demandes restent valables).
mine-none-yet = Aucune photo n'a encore été envoyée depuis ce navigateur, ou elles ont été supprimées.
mine-no-cookie = Ce navigateur n'a pas encore envoyé de photo.
mine-sent = envoyée le { $date }
mine-delete = Supprimer
mine-delete-label = Supprimer la demande envoyée le { $date } et sa photo
mine-truncated = Seules les { $n } plus récentes sont affichées.
mine-check = Vérifier une photo
outcome-see-a-doctor = Voir un médecin ({ $percent } de probabilité estimée de malignité)
outcome-looks-benign = Semble bénin ({ $percent } de probabilité estimée de malignité)
outcome-refused = Le modèle n'a pas pu juger cette photo
outcome-failed = La photo n'a pas pu être analysée
outcome-waiting = En attente de l'analyse

## Erreurs (templates/error.html)
error-reference = Si cela se reproduit, citez cette référence :

## Diagnostics (par code HAM10000)
dx-akiec = Kératose actinique / carcinome intraépithélial (maladie de Bowen)
dx-bcc = Carcinome basocellulaire
dx-bkl = Lésion de type kératose bénigne
dx-df = Dermatofibrome
dx-mel = Mélanome
dx-nv = Nævus mélanocytaire (grain de beauté)
dx-vasc = Lésion vasculaire

## Messages d'erreur (crates/web/src/error.rs, par code) et titres des pages (par statut HTTP)
error-not-found = Cette page ou cette demande n'existe pas. Vérifiez le lien.
error-deleted = Cette demande a été supprimée ; sa photo et son résultat n'existent plus.
error-forbidden = Seule la personne qui a envoyé la photo peut faire ceci.
error-overloaded = Le service est très occupé ; réessayez dans un instant.
error-unavailable = Le service est indisponible pour un moment ; réessayez bientôt.
error-internal-error = Quelque chose s'est mal passé de notre côté.
error-no-photo = Aucune photo n'a été envoyée : choisissez ou prenez d'abord une photo.
error-malformed-upload = L'envoi n'a pas pu être lu ; envoyez la photo à nouveau.
error-file-too-large = Le fichier dépasse { $limit }.
error-image-too-small = L'image fait { $width }×{ $height } pixels ; il en faut au moins { $min }×{ $min } pour voir un grain de beauté.
error-empty-file = Le fichier est vide.
error-not-an-image = Le fichier n'est pas une image (une photo JPEG, PNG ou WebP est attendue).
error-unsupported-format = Les images { $format } ne peuvent pas être lues : envoyez la photo en JPEG (PNG et WebP conviennent aussi).
error-truncated-image = L'image { $format } est tronquée : le fichier s'arrête avant la fin de l'image.
error-corrupt-image = L'image { $format } n'a pas pu être décodée ; le fichier est peut-être abîmé.
error-image-too-large = L'image est trop grande : elle a plus de pixels que mole n'en accepte. Envoyez une photo plus petite.
http-400 = La requête n'a pas pu être lue
http-403 = Non autorisé
http-404 = Introuvable
http-408 = Trop lent
http-410 = Supprimée
http-413 = Fichier trop volumineux
http-415 = Pas une photo que mole peut lire
http-422 = Photo non acceptée
http-429 = Service occupé
http-500 = Une erreur s'est produite
http-503 = Indisponible pour un moment
error-back = Vérifier une autre photo

## La page du modèle (templates/model.html)
model-page-title = Le modèle — mole
model-title = Le modèle derrière mole
model-runs = mole utilise { $version }.
model-intro = C'est un réseau convolutif ({ $architecture }) entraîné sur { $data }. Il regarde la photo réduite à { $size }×{ $size } pixels et estime la probabilité de chacun des sept diagnostics ci-dessous. Quand les diagnostics comptés comme malins atteignent { $threshold } ou plus, le verdict est « voir un médecin ».
model-notice-title = Pas un dispositif médical.
model-notice = Les chiffres ci-dessous viennent d'images de dermatoscope prises en clinique ; une photo de votre peau prise au téléphone est un autre genre d'image, et le modèle peut y faire moins bien.
model-how-well = Ce qu'il vaut
model-measured = Mesuré par l'évaluateur du projet (mole eval, avec le prétraitement même du service et le moteur { $backend }) sur { $n } images de { $set } que le modèle n'a jamais vues à l'entraînement. Évalué le { $date }.
model-measured-tta = Mesuré par l'évaluateur du projet (mole eval, avec le prétraitement même du service et le moteur { $backend }, avec augmentation au moment du test) sur { $n } images de { $set } que le modèle n'a jamais vues à l'entraînement. Évalué le { $date }.
model-sensitivity = Lésions malignes trouvées (sensibilité)
model-missed = { $n } manquées
model-specificity = Lésions bénignes dites bénignes (spécificité)
model-auc = AUC ROC malin contre bénin
model-balanced-accuracy = Exactitude équilibrée (7 diagnostics)
model-accuracy = Exactitude
model-macro-auc = AUC ROC macro
model-ece = Erreur de calibration (ECE)
model-ece-value = { $value } points de pourcentage
model-per-class = Par diagnostic
model-col-diagnosis = Diagnostic
model-col-recall = Trouvés (rappel)
model-col-precision = Précision
model-col-images = Images
model-not-evaluated = absent de l'ensemble évalué
model-full-report = Le rapport complet
model-report = { $link } : matrice de confusion, courbes ROC, diagramme de fiabilité, répartition des classes et les erreurs les plus sûres d'elles (en anglais).
model-no-report = Aucun rapport d'évaluation de ce modèle n'est installé. Lancez mole eval sur un ensemble étiqueté pour en faire un.
model-origin = D'où il vient
model-training-data = Données d'entraînement
model-licence = Licence des données
model-citation = Citation
model-calibration = Calibration
model-temperature = température du softmax { $value }
model-card = Fiche du modèle
model-check = Vérifier une photo
